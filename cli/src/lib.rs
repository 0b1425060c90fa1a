//! Shared pieces of the mcr binaries.
