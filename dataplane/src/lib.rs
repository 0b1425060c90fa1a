//! mcr data plane.
