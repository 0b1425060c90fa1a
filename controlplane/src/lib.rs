//! The mcr control plane: the supervisor thread that owns all state, the
//! compiler from rules to forwarding tables, and the interface monitor.

pub mod compile;
pub mod control;
pub mod files;
pub mod igmp;
pub mod interfaces;
pub mod metrics;
pub mod mroute;
pub mod msdp;
pub mod namespace;
pub mod pim;
pub mod privilege;
pub mod proxy;
pub mod rpf;
pub mod supervisor;

pub use supervisor::{LogControl, Options, Signals, Supervisor};
