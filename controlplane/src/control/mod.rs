//! The control socket, in three layers (after mini-redis):
//! - [`connection`]: one client's byte stream cut into bounded lines, and its
//!   bounded output queue;
//! - [`protocol`]: what a line means (a [`protocol::Request`]) and what we
//!   answer (a [`protocol::Response`]);
//! - [`server`]: the listening socket and the set of clients, driven by the
//!   supervisor's poll loop. The supervisor executes the requests;
//! - [`socket_file`]: how the socket file is put in place and removed.

pub mod api;
pub mod connection;
pub mod protocol;
pub mod server;
pub mod socket_file;

pub use protocol::{ErrorCode, Request, Response, PROTOCOL_VERSION};
pub use server::ControlServer;
