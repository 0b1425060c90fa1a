//! Zero-copy views over the packet formats the data plane reads.
//!
//! Each format is a view (`Frame`/`Packet`) over a byte slice with accessors
//! for its fields, plus a small `Repr` with the meaning. `new_checked` is the
//! only way in: it verifies every length the accessors rely on, so parsing is
//! total (no accessor can index out of bounds) and nothing that comes off the
//! wire can panic the engine. `emit` writes a `Repr` back, so tests can build
//! packets with the same code that reads them.

pub mod ethernet;
pub mod ipv4;
pub mod udp;

/// Why a frame could not be read. Each reason is a drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the header, or shorter than a length field says.
    Truncated,
    /// A field holds a value the format does not allow.
    Malformed,
}
