//! mcr configuration.
