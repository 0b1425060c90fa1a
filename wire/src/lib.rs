//! Packet formats (placeholder; filled by the wire work).
