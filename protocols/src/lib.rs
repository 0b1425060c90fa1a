//! Routing protocols (placeholder; filled by the protocols work).
