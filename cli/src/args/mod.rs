//! The command lines of the binaries, as clap definitions in the library so
//! that the man pages and shell completions are generated from the very
//! definitions the binaries parse with (see [`crate::docs`]).

pub mod mcrctl;
pub mod mcrd;
pub mod mcrgen;
