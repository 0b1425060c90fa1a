//! mcr control plane.
