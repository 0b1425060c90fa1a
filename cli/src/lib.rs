//! Shared pieces of the mcr binaries.
pub mod client;
pub mod logwriter;
pub mod render;
pub mod render_pim;
