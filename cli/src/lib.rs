//! Shared pieces of the mcr binaries.
pub mod args;
pub mod client;
pub mod docs;
pub mod logwriter;
pub mod render;
pub mod render_msdp;
pub mod render_pim;
