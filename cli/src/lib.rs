//! Shared pieces of the mcr binaries.
pub mod traffic;
