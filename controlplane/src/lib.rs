//! The mcr control plane: the supervisor thread that owns all state, the
//! compiler from rules to forwarding tables, and the interface monitor.

pub mod compile;
pub mod interfaces;
pub mod supervisor;

pub use supervisor::{Options, Signals, Supervisor};
