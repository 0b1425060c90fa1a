//! Traffic tools: the `mcrgen` generator and the `mcrd listen` receiver,
//! used by the end-to-end tests and the performance harness.
//!
//! IPv4 UDP only. The generator sends only to the address given on its
//! command line (with `--streams N`, to N consecutive ports of it), through
//! a blocking UDP socket with `sendmmsg` (a full device queue is reported via
//! IP_RECVERR and the packet is sent again, so nothing is lost silently at
//! the sender), or with `--af-packet` as prebuilt Ethernet frames on an
//! AF_PACKET socket (multicast only, about twice the rate).
//!
//! # Payload format
//!
//! Every generated UDP payload starts with a 24-byte header, all fields
//! big-endian:
//!
//! | offset | size | field                                               |
//! |-------:|-----:|-----------------------------------------------------|
//! |      0 |    4 | magic `0x4D435247` (ASCII `"MCRG"`)                 |
//! |      4 |    4 | stream id                                           |
//! |      8 |    8 | sequence number, from 0 per stream                  |
//! |     16 |    8 | send time, CLOCK_REALTIME nanoseconds since epoch   |
//!
//! The rest of the payload is filler. The byte at offset `i` (counted from
//! the start of the payload, so `i >= 24`) is
//!
//! ```text
//! byte[i] = (i + seed) mod 256,   seed = (seq + 101 * stream) mod 256
//! ```
//!
//! (`seq` and `stream` taken as their low bytes). It is a function of
//! (stream, seq, offset) only, so a receiver can check every byte
//! ([`header::verify`]); a mismatch counts the packet as *corrupted*.
//!
//! Payloads shorter than 24 bytes (sizes 1..=23 are allowed) carry the first
//! `size` bytes of the header and no filler. The listener counts them (and
//! any payload without the magic) as packets and bytes of a `stream: null`
//! row, without sequence checks.
//!
//! # Accounting
//!
//! The listener keeps one tracker per (source IPv4 address, stream id; the
//! source port is not part of the key, so a sender that changes its port
//! keeps one sequence space):
//! received (duplicates included), bytes, lost, duplicates, reordered,
//! corrupted, first/last sequence, min/max payload size, min/max IP TTL,
//! latency (kernel receive timestamp minus the send timestamp; both
//! CLOCK_REALTIME, so only meaningful on one host or with synced clocks) and
//! a 64-bit hash of all payload bytes in receive order (FNV-1a steps over
//! 8-byte words, [`account::payload_hash`]). See
//! [`account`] for the exact definitions of lost/duplicate/reordered.

pub mod account;
mod ethtool;
pub mod gen;
pub mod header;
pub mod listen;
mod sys;

pub use gen::{GenArgs, GenSummary};
pub use listen::{ListenArgs, ListenSummary, SourceSummary, StreamSummary};
