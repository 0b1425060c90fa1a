//! IPv4 address and CIDR parsing with messages a user can act on.

use std::fmt;
use std::net::Ipv4Addr;

use serde::de::{self, Deserializer, Visitor};

/// Example shown for group-like addresses.
pub(crate) const GROUP_EXAMPLE: &str = "239.1.1.1";
/// Example shown for unicast host addresses.
pub(crate) const UNICAST_EXAMPLE: &str = "10.0.0.1";

/// Parses a dotted-quad IPv4 address. The error explains what is wrong and
/// shows `example`.
pub(crate) fn parse_ipv4(text: &str, example: &str) -> Result<Ipv4Addr, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!(
            "address is empty; write an IPv4 address such as {example}"
        ));
    }
    if s.contains(':') {
        return Err(format!(
            "'{text}' looks like an IPv6 address; IPv6 is not supported yet, use an IPv4 address such as {example}"
        ));
    }
    if s.contains('/') {
        return Err(format!(
            "'{text}' is a prefix, not an address; write a single IPv4 address such as {example}"
        ));
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err(format!(
            "'{text}' has {} part{}; an IPv4 address has 4 numbers from 0 to 255 separated by dots, e.g. {example}",
            parts.len(),
            if parts.len() == 1 { "" } else { "s" }
        ));
    }
    let mut octets = [0u8; 4];
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(format!(
                "'{text}' has an empty part; an IPv4 address has 4 numbers from 0 to 255 separated by dots, e.g. {example}"
            ));
        }
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "'{text}': '{part}' is not a decimal number; an IPv4 address has 4 numbers from 0 to 255 separated by dots, e.g. {example}"
            ));
        }
        if part.len() > 1 && part.starts_with('0') {
            return Err(format!(
                "'{text}': '{part}' has a leading zero (ambiguous: octal or decimal?); remove it, e.g. {example}"
            ));
        }
        match part.parse::<u16>() {
            Ok(n) if n <= 255 => octets[i] = n as u8,
            _ => {
                return Err(format!(
                    "'{text}': {part} is larger than 255; each of the 4 numbers of an IPv4 address is from 0 to 255, e.g. {example}"
                ))
            }
        }
    }
    Ok(Ipv4Addr::from(octets))
}

/// A parsed, validated multicast CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub(crate) network: Ipv4Addr,
    pub(crate) prefix_len: u8,
}

/// Parses a multicast group range such as `239.0.0.0/8`.
pub(crate) fn parse_multicast_cidr(text: &str) -> Result<Cidr, String> {
    let example = "239.0.0.0/8";
    let Some((addr_part, len_part)) = text.trim().split_once('/') else {
        return Err(format!(
            "'{text}' is not a CIDR range; write address/prefix-length, e.g. {example} (all multicast: 224.0.0.0/4)"
        ));
    };
    let network =
        parse_ipv4(addr_part, "239.0.0.0").map_err(|e| format!("in group range '{text}': {e}"))?;
    let prefix_len = match len_part.parse::<u8>() {
        Ok(n) if n <= 32 && len_part.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            return Err(format!(
                "'{text}': prefix length '{len_part}' must be a number from 4 to 32, e.g. {example}"
            ))
        }
    };
    let mask: u32 = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    };
    let bits = u32::from(network);
    if bits & !mask != 0 {
        let fixed = Ipv4Addr::from(bits & mask);
        return Err(format!(
            "'{text}' has host bits set after the /{prefix_len} prefix; did you mean '{fixed}/{prefix_len}'?"
        ));
    }
    if prefix_len < 4 || !network.is_multicast() {
        return Err(format!(
            "'{text}' is not inside the multicast range 224.0.0.0/4; use a multicast range such as {example}"
        ));
    }
    Ok(Cidr {
        network,
        prefix_len,
    })
}

/// Parses a static RP's `group`: a multicast CIDR range, or a single
/// multicast group meaning /32 (the seed system accepts both forms).
pub(crate) fn parse_group_range(text: &str) -> Result<Cidr, String> {
    if text.contains('/') {
        return parse_multicast_cidr(text);
    }
    let network = parse_ipv4(text, "239.0.0.0/8").map_err(|e| format!("in group '{text}': {e}"))?;
    if !network.is_multicast() {
        return Err(format!(
            "'{text}' is not a multicast group; write a multicast range such as 239.0.0.0/8 (all multicast: 224.0.0.0/4) or a single group such as 239.1.1.1"
        ));
    }
    Ok(Cidr {
        network,
        prefix_len: 32,
    })
}

struct AddrVisitor {
    example: &'static str,
}

impl Visitor<'_> for AddrVisitor {
    type Value = Ipv4Addr;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an IPv4 address string such as \"{}\"", self.example)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Ipv4Addr, E> {
        parse_ipv4(v, self.example).map_err(E::custom)
    }
}

struct OptAddrVisitor {
    example: &'static str,
}

impl<'de> Visitor<'de> for OptAddrVisitor {
    type Value = Option<Ipv4Addr>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an IPv4 address string such as \"{}\"", self.example)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(AddrVisitor {
            example: self.example,
        })
        .map(Some)
    }
}

pub(crate) fn de_group<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Addr, D::Error> {
    d.deserialize_str(AddrVisitor {
        example: GROUP_EXAMPLE,
    })
}

pub(crate) fn de_unicast<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Addr, D::Error> {
    d.deserialize_str(AddrVisitor {
        example: UNICAST_EXAMPLE,
    })
}

pub(crate) fn de_opt_unicast<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Ipv4Addr>, D::Error> {
    d.deserialize_option(OptAddrVisitor {
        example: UNICAST_EXAMPLE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_addresses() {
        assert_eq!(
            parse_ipv4("239.1.1.1", GROUP_EXAMPLE),
            Ok(Ipv4Addr::new(239, 1, 1, 1))
        );
        assert_eq!(parse_ipv4("0.0.0.0", "x"), Ok(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn bad_addresses_explain() {
        let e = parse_ipv4("239.1.1", GROUP_EXAMPLE).unwrap_err();
        assert!(e.contains("3 parts") && e.contains("239.1.1.1"), "{e}");
        let e = parse_ipv4("300.1.1.1", GROUP_EXAMPLE).unwrap_err();
        assert!(e.contains("300 is larger than 255"), "{e}");
        let e = parse_ipv4("ff02::1", GROUP_EXAMPLE).unwrap_err();
        assert!(e.contains("IPv6 is not supported yet"), "{e}");
        let e = parse_ipv4("239.01.1.1", GROUP_EXAMPLE).unwrap_err();
        assert!(e.contains("leading zero"), "{e}");
        let e = parse_ipv4("239.a.1.1", GROUP_EXAMPLE).unwrap_err();
        assert!(e.contains("'a' is not a decimal number"), "{e}");
        let e = parse_ipv4("99999999999999999999.1.1.1", GROUP_EXAMPLE).unwrap_err();
        assert!(e.contains("larger than 255"), "{e}");
    }

    #[test]
    fn cidr() {
        assert_eq!(
            parse_multicast_cidr("239.0.0.0/8"),
            Ok(Cidr {
                network: Ipv4Addr::new(239, 0, 0, 0),
                prefix_len: 8
            })
        );
        assert!(parse_multicast_cidr("224.0.0.0/4").is_ok());
        assert!(parse_multicast_cidr("239.1.2.3/32").is_ok());
        let e = parse_multicast_cidr("239.1.0.0/8").unwrap_err();
        assert!(e.contains("did you mean '239.0.0.0/8'"), "{e}");
        assert!(parse_multicast_cidr("10.0.0.0/8")
            .unwrap_err()
            .contains("multicast range"));
        assert!(parse_multicast_cidr("239.0.0.0").is_err());
        assert!(parse_multicast_cidr("239.0.0.0/33").is_err());
        assert!(parse_multicast_cidr("239.0.0.0/+8").is_err());
        assert!(parse_multicast_cidr("0.0.0.0/0").is_err());
        assert!(parse_multicast_cidr("239.0.0/8").is_err());
    }

    #[test]
    fn group_range_accepts_a_single_group() {
        assert_eq!(
            parse_group_range("239.1.1.1"),
            Ok(Cidr {
                network: Ipv4Addr::new(239, 1, 1, 1),
                prefix_len: 32
            })
        );
        assert_eq!(
            parse_group_range("239.0.0.0/8").map(|c| c.prefix_len),
            Ok(8)
        );
        assert!(parse_group_range("10.0.0.1")
            .unwrap_err()
            .contains("not a multicast group"));
        assert!(parse_group_range("239.1.1").is_err());
    }
}
