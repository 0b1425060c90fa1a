//! Stable rule identifiers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::schema::Input;

/// Identifies a rule across reloads and restarts.
///
/// A named rule's id is its name. An unnamed rule's id is `r-` followed by
/// 16 lowercase hex digits: the 64-bit FNV-1a hash (offset basis
/// `0xcbf29ce484222325`, prime `0x100000001b3`) of the UTF-8 bytes of the
/// canonical input key `interface|group|port|source`, where `group` and
/// `source` are dotted-quad IPv4 addresses, `port` is decimal and `source` is
/// `*` when absent. Example: `eth0|239.1.1.1|5001|*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(String);

impl RuleId {
    /// Wraps an existing id string (e.g. one a user typed).
    pub fn new(id: impl Into<String>) -> Self {
        RuleId(id.into())
    }

    /// The id computed from an input key (used for unnamed rules).
    pub fn from_input(input: &Input) -> Self {
        RuleId(format!(
            "r-{:016x}",
            fnv1a64(canonical_key(input).as_bytes())
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RuleId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The canonical byte string of an input key, hashed for unnamed rule ids.
pub fn canonical_key(input: &Input) -> String {
    let source = match input.source {
        Some(s) => s.to_string(),
        None => "*".to_string(),
    };
    format!(
        "{}|{}|{}|{}",
        input.interface, input.group, input.port, source
    )
}

/// FNV-1a 64-bit offset basis (the hash of no bytes).
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Continues a 64-bit FNV-1a hash `h` over `bytes`: the one byte-wise
/// FNV-1a of the workspace (rule ids here, `mcrd listen`'s payload hash in
/// `mcr-traffic`).
#[inline]
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

/// True when `s` has the shape of a generated id (`r-` + 16 lowercase hex).
pub(crate) fn looks_generated(s: &str) -> bool {
    s.len() == 18
        && s.starts_with("r-")
        && s[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn input(source: Option<Ipv4Addr>) -> Input {
        Input {
            interface: "eth0".into(),
            group: Ipv4Addr::new(239, 1, 1, 1),
            port: 5001,
            source,
        }
    }

    #[test]
    fn fnv_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn canonical_key_format() {
        assert_eq!(canonical_key(&input(None)), "eth0|239.1.1.1|5001|*");
        assert_eq!(
            canonical_key(&input(Some(Ipv4Addr::new(10, 0, 0, 1)))),
            "eth0|239.1.1.1|5001|10.0.0.1"
        );
    }

    #[test]
    fn id_is_stable() {
        // Hard-coded: changing the algorithm or the canonical key must fail here,
        // because ids are visible to users and scripts across restarts.
        assert_eq!(
            RuleId::from_input(&input(None)).as_str(),
            "r-f62ad393606390cd"
        );
        assert_eq!(
            RuleId::from_input(&input(Some(Ipv4Addr::new(10, 0, 0, 1)))).as_str(),
            "r-fb23834ef49c4f9d"
        );
    }

    #[test]
    fn generated_shape() {
        assert!(looks_generated(RuleId::from_input(&input(None)).as_str()));
        assert!(!looks_generated("r-xyz"));
        assert!(!looks_generated("my-rule"));
    }
}
