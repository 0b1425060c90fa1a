//! Semantic validation: everything serde cannot check. Collects every
//! problem; positions are filled in later by the caller when source text
//! is available.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::addr::parse_group_range;
use crate::diagnostic::Diagnostic;
use crate::rule_id::looks_generated;
use crate::schema::{Config, Input, RpfProvider, Rule};

/// Longest Linux interface name in bytes (IFNAMSIZ - 1).
pub const MAX_INTERFACE_NAME_LEN: usize = 15;
/// Longest rule name in bytes: a name is an id shown in tables, logs and
/// events, and is sent back in `remove` requests.
pub const MAX_RULE_NAME_LEN: usize = 128;
/// Allowed range of `control_plane.event_buffer_size`.
pub const EVENT_BUFFER_SIZE_RANGE: std::ops::RangeInclusive<usize> = 16..=1_048_576;
/// Longest Unix socket path (sun_path is 108 bytes including the NUL).
const MAX_SOCKET_PATH_LEN: usize = 107;

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

struct Sink(Vec<Diagnostic>);

impl Sink {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Diagnostic::new(path, message));
    }
}

/// Checks one interface name given at run time (e.g. `mcrctl igmp enable
/// --interface IF`) as the file's names are checked.
///
/// # Errors
/// The message the config check would give.
pub fn validate_interface_name(name: &str) -> Result<(), String> {
    let mut out = Sink(Vec::new());
    check_interface(&mut out, "interface".into(), name);
    match out.0.into_iter().next() {
        Some(d) => Err(d.message),
        None => Ok(()),
    }
}

/// Checks a Linux interface name the way the kernel does (`dev_valid_name`).
fn check_interface(out: &mut Sink, path: String, name: &str) {
    if name.is_empty() {
        out.err(
            path,
            "interface name is empty; give the name of a network interface, e.g. \"eth0\"",
        );
    } else if name.len() > MAX_INTERFACE_NAME_LEN {
        out.err(
            path,
            format!(
                "interface name '{name}' is {} bytes long; Linux interface names are at most {MAX_INTERFACE_NAME_LEN} bytes (check `ip link show`)",
                name.len()
            ),
        );
    } else if name == "." || name == ".." {
        out.err(path, format!("'{name}' is not a valid interface name"));
    } else if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        out.err(
            path,
            format!(
                "interface name '{}' contains {:?}, which Linux does not allow in interface names",
                name.escape_debug(),
                c
            ),
        );
    }
}

fn check_port(out: &mut Sink, path: String, port: u16) {
    if port == 0 {
        out.err(path, "port 0 is not allowed; use a port from 1 to 65535");
    }
}

fn is_unicast_host(a: Ipv4Addr) -> bool {
    !(a.is_multicast() || a.is_unspecified() || a.is_broadcast())
}

fn check_unicast(out: &mut Sink, path: String, a: Ipv4Addr, what: &str) {
    if !is_unicast_host(a) {
        let why = if a.is_multicast() {
            "is a multicast address"
        } else if a.is_unspecified() {
            "is the unspecified address"
        } else {
            "is the broadcast address"
        };
        out.err(
            path,
            format!("{what} {a} {why}; {what} must be a unicast address such as 10.0.0.1"),
        );
    }
}

fn check_input(out: &mut Sink, base: &str, input: &Input) {
    check_interface(out, join(base, "interface"), &input.interface);
    if input.group.is_unspecified() || input.group.is_broadcast() {
        out.err(
            join(base, "group"),
            format!(
                "input group {} cannot be captured; use a multicast group (e.g. 239.1.1.1) or a unicast address of this host",
                input.group
            ),
        );
    }
    check_port(out, join(base, "port"), input.port);
    if let Some(src) = input.source {
        check_unicast(out, join(base, "source"), src, "source");
    }
}

/// Validates one rule on its own (no cross-rule checks). `path` is the rule's
/// key path, e.g. `rules[2]`, or empty. Returned diagnostics have no position.
pub fn validate_rule(rule: &Rule, path: &str) -> Vec<Diagnostic> {
    let mut out = Sink(Vec::new());
    check_rule(&mut out, rule, path);
    out.0
}

fn check_rule(out: &mut Sink, rule: &Rule, base: &str) {
    if let Some(name) = &rule.name {
        let p = join(base, "name");
        if name.trim().is_empty() {
            out.err(
                p,
                "rule name is empty; give a name or remove the 'name' key to get a generated id",
            );
        } else if name.len() > MAX_RULE_NAME_LEN {
            out.err(
                p,
                format!(
                    "rule name '{}' is {} bytes long; rule names are at most {MAX_RULE_NAME_LEN} bytes",
                    crate::text::escape(&crate::text::shorten(name, 40)),
                    name.len()
                ),
            );
        } else if let Some((pos, c, what)) = name
            .chars()
            .enumerate()
            .find_map(|(i, c)| crate::text::unsafe_char(c).map(|w| (i, c, w)))
        {
            out.err(
                p,
                format!(
                    "rule name '{}' contains U+{:04X} ({what}) at character {}; rule names may not hold control, bidirectional, zero-width or line-separator characters",
                    crate::text::escape(name),
                    c as u32,
                    pos + 1
                ),
            );
        } else if looks_generated(name) {
            out.err(p, format!("rule name '{name}' has the form of a generated rule id (r- and 16 hex digits); choose another name"));
        }
    }
    let ibase = join(base, "input");
    check_input(out, &ibase, &rule.input);
    let obase = join(base, "outputs");
    if rule.outputs.is_empty() {
        out.err(
            obase.clone(),
            "rule has no outputs; add at least one, e.g. outputs: [ { interface: \"eth1\", group: \"239.1.1.1\", port: 5001 } ]",
        );
    }
    for (i, o) in rule.outputs.iter().enumerate() {
        let p = format!("{obase}[{i}]");
        check_interface(out, join(&p, "interface"), &o.interface);
        if o.group.is_unspecified() {
            out.err(
                join(&p, "group"),
                "output group 0.0.0.0 is not a destination; use a multicast group (e.g. 239.1.1.1) or a unicast host address",
            );
        }
        if o.group.is_broadcast() {
            out.err(
                join(&p, "group"),
                format!(
                    "output {} is the limited broadcast address, which the kernel refuses to send to from a relay socket (every send would fail); use the subnet's directed broadcast of interface {} (e.g. 10.0.0.255) or a multicast group",
                    o.group, o.interface
                ),
            );
        } else if o.group.is_loopback() {
            out.err(
                join(&p, "group"),
                format!(
                    "output {} is a loopback address: nothing would leave interface {}; to feed a program on this host, have it join the input group, or relay to a multicast group it joins",
                    o.group, o.interface
                ),
            );
        }
        check_port(out, join(&p, "port"), o.port);
        if o.when == crate::OutputWhen::Members && !o.group.is_multicast() {
            out.err(
                join(&p, "when"),
                format!(
                    "when: \"members\" follows IGMP members of a multicast group, and {} is not one; use a multicast output group or remove 'when'",
                    o.group
                ),
            );
        }
        if o.ttl == Some(crate::schema::Ttl::Set(0)) {
            out.err(
                join(&p, "ttl"),
                "ttl 0 would drop every packet; use a TTL from 1 to 255, or remove 'ttl' for the default (multicast_ttl, 1 unless set, for multicast; 64 for unicast)",
            );
        }
        if o.interface == rule.input.interface
            && o.group == rule.input.group
            && o.port == rule.input.port
        {
            out.err(
                p.clone(),
                format!(
                    "output is the rule's own input ({} {}:{}); this would loop packets back; change the interface, group or port",
                    o.interface, o.group, o.port
                ),
            );
        }
        if let Some(j) = rule.outputs[..i].iter().position(|prev| {
            prev.interface == o.interface && prev.group == o.group && prev.port == o.port
        }) {
            out.err(
                p,
                format!(
                    "duplicate output: same interface, group and port as {obase}[{j}]; remove one"
                ),
            );
        }
    }
}

/// Rules that feed each other: an output of one is the input (interface,
/// group, port) of another, round to the first. Within one instance such
/// a loop never dies out when outputs set their TTL. Reported once per
/// cycle, on the rule that closes it (the highest index).
fn check_cycles(out: &mut Sink, cfg: &Config) {
    type Key<'a> = (&'a str, Ipv4Addr, u16);
    let mut by_input: HashMap<Key<'_>, Vec<usize>> = HashMap::new();
    for (i, r) in cfg.rules.iter().enumerate() {
        by_input
            .entry((r.input.interface.as_str(), r.input.group, r.input.port))
            .or_default()
            .push(i);
    }
    let next: Vec<Vec<usize>> = cfg
        .rules
        .iter()
        .map(|r| {
            let mut n: Vec<usize> = r
                .outputs
                .iter()
                .flat_map(|o| {
                    by_input
                        .get(&(o.interface.as_str(), o.group, o.port))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            n.sort_unstable();
            n.dedup();
            n
        })
        .collect();
    // Depth-first search for back edges (iterative: configs can be large).
    let n = cfg.rules.len();
    let mut color = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    let mut reported = std::collections::HashSet::new();
    for start in 0..n {
        if color[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = 1;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            if let Some(&w) = next[v].get(*k) {
                *k += 1;
                if color[w] == 0 {
                    color[w] = 1;
                    stack.push((w, 0));
                } else if color[w] == 1 {
                    // The cycle is w .. v on the stack.
                    let at = stack.iter().position(|(x, _)| *x == w).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[at..].iter().map(|(x, _)| *x).collect();
                    let last = *cycle.iter().max().unwrap_or(&v);
                    let mut key = cycle.clone();
                    key.sort_unstable();
                    if w == v || !reported.insert(key) {
                        continue;
                    }
                    cycle.push(w);
                    let path: Vec<String> = cycle
                        .iter()
                        .map(|&i| {
                            let r = &cfg.rules[i];
                            format!(
                                "rules[{i}] ({} {}:{})",
                                r.input.interface, r.input.group, r.input.port
                            )
                        })
                        .collect();
                    out.err(
                        format!("rules[{last}].outputs"),
                        format!(
                            "rules feed each other in a loop: {}; each would relay the others' output back to its input forever (with a fixed TTL it never dies out); change a group, port or interface so no output is another rule's input",
                            path.join(" -> ")
                        ),
                    );
                }
            } else {
                color[v] = 2;
                stack.pop();
            }
        }
    }
}

/// Validates a whole configuration. Diagnostics have paths but no position.
pub(crate) fn check_config(cfg: &Config) -> Vec<Diagnostic> {
    let mut out = Sink(Vec::new());
    check_cycles(&mut out, cfg);

    let mut inputs: HashMap<&Input, usize> = HashMap::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, rule) in cfg.rules.iter().enumerate() {
        let base = format!("rules[{i}]");
        check_rule(&mut out, rule, &base);
        if let Some(&j) = inputs.get(&rule.input) {
            out.err(
                format!("{base}.input"),
                format!(
                    "duplicate input: rules[{j}] already captures interface {} group {} port {}{}; merge the outputs into one rule",
                    rule.input.interface,
                    rule.input.group,
                    rule.input.port,
                    match rule.input.source {
                        Some(s) => format!(" source {s}"),
                        None => String::new(),
                    }
                ),
            );
        } else {
            inputs.insert(&rule.input, i);
        }
        let id = rule.id();
        if let Some(&j) = ids.get(id.as_str()) {
            if rule.name.is_some() {
                out.err(
                    format!("{base}.name"),
                    format!("duplicate rule name '{id}': rules[{j}] already uses it; names must be unique"),
                );
            }
        } else {
            ids.insert(id.as_str().to_string(), i);
        }
    }

    if let Some(cores) = &cfg.cores {
        if cores.is_empty() {
            out.err("cores", "cores is empty, so no data-plane engine would run; list CPU numbers (e.g. [0, 1]) or remove 'cores' to use all online CPUs");
        }
        for (i, c) in cores.iter().enumerate() {
            if let Some(j) = cores[..i].iter().position(|x| x == c) {
                out.err(
                    format!("cores[{i}]"),
                    format!("CPU {c} is listed twice (also cores[{j}]); list each CPU once"),
                );
            }
        }
    }
    for (key, value) in [
        ("user", &cfg.user),
        ("control_socket_group", &cfg.control_socket_group),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            out.err(
                key,
                format!("{key} is empty; give a name or remove the key"),
            );
        }
    }

    check_multicast_ttl(&mut out, cfg);
    check_pinning(&mut out, cfg);
    check_igmp(&mut out, cfg);
    check_pim(&mut out, cfg);
    check_msdp(&mut out, cfg);
    check_control_plane(&mut out, cfg);
    check_metrics(&mut out, cfg);
    check_data_plane(&mut out, cfg);
    out.0
}

fn check_data_plane(out: &mut Sink, cfg: &Config) {
    let ring = cfg.data_plane.receive_ring;
    if ring > crate::schema::MAX_RECEIVE_RING || (ring > 0 && ring < 64) {
        out.err(
            "data_plane.receive_ring",
            format!(
                "{ring} ring slots is out of range: use 0 (no ring) or 64 to {}; 4096 holds about 8 ms of traffic at 500,000 packets/s",
                crate::schema::MAX_RECEIVE_RING
            ),
        );
    }
}

fn check_metrics(out: &mut Sink, cfg: &Config) {
    let Some(listen) = &cfg.metrics.listen else {
        return;
    };
    match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() == 0 => out.err(
            "metrics.listen",
            format!("port 0 in '{listen}' is not allowed: scrapers need a fixed port; use e.g. \"127.0.0.1:9469\""),
        ),
        Ok(_) => {}
        Err(_) => out.err(
            "metrics.listen",
            format!(
                "'{}' is not an IP:PORT address; use e.g. \"127.0.0.1:9469\" (or \"[::1]:9469\"), or remove the key to turn the endpoint off",
                listen.escape_debug()
            ),
        ),
    }
}

fn check_interface_list<'a>(
    out: &mut Sink,
    base: &str,
    names: impl Iterator<Item = (String, &'a str)>,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, (path, name)) in names.enumerate() {
        check_interface(out, path.clone(), name);
        if let Some(&j) = seen.get(name) {
            out.err(
                path,
                format!("interface '{name}' is listed twice (also {base}[{j}]); list it once"),
            );
        } else {
            seen.insert(name, i);
        }
    }
}

/// Longest IGMP query interval: QQIC's largest encodable value (RFC 3376
/// 4.1.7), which is also far beyond any sane setting for v2.
pub const MAX_QUERY_INTERVAL: u32 = 31_744;
/// Longest PIM hello period: the Hello Holdtime is 3.5 x the period and
/// must fit in 16 bits below 0xffff, which means "never time out"
/// (RFC 7761 4.11 and 4.9.2).
pub const MAX_HELLO_PERIOD: u16 = 18_724;

fn check_igmp(out: &mut Sink, cfg: &Config) {
    let g = &cfg.igmp;
    check_interface_list(
        out,
        "igmp.querier_interfaces",
        g.querier_interfaces
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("igmp.querier_interfaces[{i}]"), n.as_str())),
    );
    if g.enabled == Some(true) && g.querier_interfaces.is_empty() && g.proxy.is_none() {
        out.err(
            "igmp.enabled",
            "igmp is enabled but querier_interfaces is empty, so IGMP would run nowhere; list the interfaces (e.g. querier_interfaces: [\"eth1\"]) or remove 'enabled'",
        );
    }
    if g.version != 2 && g.version != 3 {
        out.err(
            "igmp.version",
            format!("IGMP version {} is not supported; use 2 or 3", g.version),
        );
    }
    if g.query_interval == 0 || g.query_interval > MAX_QUERY_INTERVAL {
        out.err(
            "igmp.query_interval",
            format!(
                "query interval {} s is out of range; use 1 to {MAX_QUERY_INTERVAL} seconds (default 125)",
                g.query_interval
            ),
        );
    }
    // IGMPv2 encodes Max Resp Time in tenths of a second in 8 bits; v3's
    // Max Resp Code tops out at 3174.4 s.
    let max_resp = if g.version == 2 { 25 } else { 3_174 };
    if g.query_response_interval == 0 || g.query_response_interval > max_resp {
        out.err(
            "igmp.query_response_interval",
            format!(
                "query response interval {} s is out of range; IGMPv{} allows 1 to {max_resp} seconds (default 10)",
                g.query_response_interval, g.version
            ),
        );
    } else if g.query_response_interval >= g.query_interval {
        // RFC 3376 8.3: the response interval must be less than the query
        // interval, or members answer one query after the next is sent.
        out.err(
            "igmp.query_response_interval",
            format!(
                "query response interval ({} s) must be shorter than the query interval ({} s)",
                g.query_response_interval, g.query_interval
            ),
        );
    }
    // QRV is a 3-bit field (RFC 3376 4.1.6); 0 would mean "no retries".
    if g.robustness == 0 || g.robustness > 7 {
        out.err(
            "igmp.robustness",
            format!(
                "robustness {} is out of range; use 1 to 7 (default 2)",
                g.robustness
            ),
        );
    }
    if let Some(p) = &g.proxy {
        check_interface(out, "igmp.proxy.upstream".to_string(), &p.upstream);
        if p.downstream.is_empty() {
            out.err(
                "igmp.proxy.downstream",
                "the IGMP proxy has no downstream interface; list the interfaces toward the receivers, e.g. downstream: [\"eth1\"], or remove 'proxy'",
            );
        }
        check_interface_list(
            out,
            "igmp.proxy.downstream",
            p.downstream
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("igmp.proxy.downstream[{i}]"), n.as_str())),
        );
        if let Some(i) = p.downstream.iter().position(|d| *d == p.upstream) {
            out.err(
                format!("igmp.proxy.downstream[{i}]"),
                format!(
                    "interface '{}' is the upstream interface too; an IGMP proxy has one upstream interface and downstream interfaces that differ from it (RFC 4605 section 1): remove it from downstream or choose another upstream",
                    p.upstream
                ),
            );
        }
        if let Some(i) = g.querier_interfaces.iter().position(|q| *q == p.upstream) {
            out.err(
                format!("igmp.querier_interfaces[{i}]"),
                format!(
                    "interface '{}' is the IGMP proxy's upstream interface, where the proxy acts as a host and must not be the querier (RFC 4605 section 4): remove it from querier_interfaces",
                    p.upstream
                ),
            );
        }
    }
    // Max Resp Time of group-specific queries: IGMPv2 has 8 bits of
    // tenths of a second (RFC 2236 2.2).
    if !(100..=25_500).contains(&g.last_member_query_interval_ms) {
        out.err(
            "igmp.last_member_query_interval_ms",
            format!(
                "last member query interval {} ms is out of range; use 100 to 25500 milliseconds (default 1000)",
                g.last_member_query_interval_ms
            ),
        );
    }
}

fn check_hello_period(out: &mut Sink, path: String, period: u16) {
    if period == 0 || period > MAX_HELLO_PERIOD {
        out.err(
            path,
            format!(
                "hello period {period} s is out of range; use 1 to {MAX_HELLO_PERIOD} seconds (default 30)"
            ),
        );
    }
}

/// Upper bound of `pim.max_tree_entries`.
pub const MAX_TREE_ENTRIES: u32 = 1 << 20;

fn check_pim(out: &mut Sink, cfg: &Config) {
    let p = &cfg.pim;
    if let Some(a) = p.router_id {
        check_unicast(out, "pim.router_id".into(), a, "router_id");
    }
    if let Some(a) = p.rp_address {
        check_unicast(out, "pim.rp_address".into(), a, "rp_address");
    }
    if !(1..=MAX_TREE_ENTRIES).contains(&p.max_tree_entries) {
        out.err(
            "pim.max_tree_entries",
            format!(
                "max_tree_entries {} is out of range; use 1..={MAX_TREE_ENTRIES} (default {})",
                p.max_tree_entries,
                crate::schema::DEFAULT_MAX_TREE_ENTRIES
            ),
        );
    }
    check_interface_list(
        out,
        "pim.interfaces",
        p.interfaces
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("pim.interfaces[{i}].name"), n.name.as_str())),
    );
    check_hello_period(out, "pim.hello_period".into(), p.hello_period);
    for (i, iface) in p.interfaces.iter().enumerate() {
        if let Some(h) = iface.hello_period {
            check_hello_period(out, format!("pim.interfaces[{i}].hello_period"), h);
        }
    }
    let mut ranges: HashMap<(Ipv4Addr, u8), usize> = HashMap::new();
    for (i, srp) in p.static_rp.iter().enumerate() {
        let base = format!("pim.static_rp[{i}]");
        check_unicast(out, format!("{base}.rp"), srp.rp, "RP address");
        match parse_group_range(&srp.group) {
            Ok(c) => {
                if let Some(&j) = ranges.get(&(c.network, c.prefix_len)) {
                    out.err(
                        format!("{base}.group"),
                        format!(
                            "group range {} is already mapped by pim.static_rp[{j}]; a range can have only one static RP",
                            srp.group
                        ),
                    );
                } else {
                    ranges.insert((c.network, c.prefix_len), i);
                }
            }
            Err(e) => out.err(format!("{base}.group"), e),
        }
    }
}

/// Largest `msdp.sa_cache_limit` and `msdp.peers[].sa_limit`: the SA
/// cache's memory bound (about 100 bytes an entry).
pub const MAX_SA_LIMIT: u32 = 1_000_000;

fn check_msdp(out: &mut Sink, cfg: &Config) {
    let m = &cfg.msdp;
    if let Some(a) = m.local_address {
        check_unicast(out, "msdp.local_address".into(), a, "local address");
    } else if m.enabled && !m.peers.is_empty() {
        out.err(
            "msdp",
            "msdp is enabled with peers but has no local_address; set local_address to this router's address (e.g. local_address: \"10.0.0.1\"): MSDP uses it to decide which side opens the TCP connection",
        );
    }
    if m.keepalive_interval == 0 {
        out.err(
            "msdp.keepalive_interval",
            "keepalive interval 0 s is not allowed; use 1 or more seconds (default 60)",
        );
    }
    // RFC 3618 5.4/5.5: the hold timer must outlast the peer's keepalives,
    // and 3 s is its smallest allowed value.
    if m.hold_time <= m.keepalive_interval || m.hold_time < 3 {
        out.err(
            "msdp.hold_time",
            format!(
                "hold time ({} s) must be at least 3 s and longer than the keepalive interval ({} s); the defaults are 75 and 60",
                m.hold_time, m.keepalive_interval
            ),
        );
    }
    if !(1..=MAX_SA_LIMIT).contains(&m.sa_cache_limit) {
        out.err(
            "msdp.sa_cache_limit",
            format!(
                "sa_cache_limit {} is out of range; use 1 to {MAX_SA_LIMIT} (default 20000)",
                m.sa_cache_limit
            ),
        );
    }
    let mut seen: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (i, peer) in m.peers.iter().enumerate() {
        let base = format!("msdp.peers[{i}]");
        check_unicast(out, format!("{base}.address"), peer.address, "peer address");
        if Some(peer.address) == m.local_address {
            out.err(
                format!("{base}.address"),
                format!("peer address {} is this router's local_address; a router cannot peer with itself", peer.address),
            );
        }
        if let Some(&j) = seen.get(&peer.address) {
            out.err(
                format!("{base}.address"),
                format!(
                    "peer {} is listed twice (also msdp.peers[{j}]); list each peer once",
                    peer.address
                ),
            );
        } else {
            seen.insert(peer.address, i);
        }
        if let Some(l) = peer.sa_limit {
            if !(1..=MAX_SA_LIMIT).contains(&l) {
                out.err(
                    format!("{base}.sa_limit"),
                    format!(
                        "sa_limit {l} is out of range; use 1 to {MAX_SA_LIMIT} (default 10000)"
                    ),
                );
            }
        }
        for (dir, list) in [
            ("sa_filter_in", &peer.sa_filter_in),
            ("sa_filter_out", &peer.sa_filter_out),
        ] {
            for (k, f) in list.iter().enumerate() {
                if f.source_prefix().is_none() {
                    out.err(
                        format!("{base}.{dir}[{k}].source"),
                        format!("'{}' is not a source prefix; write a CIDR with host bits zero such as 10.1.0.0/16 (any source: 0.0.0.0/0)", f.source),
                    );
                }
                if let Err(e) = crate::addr::parse_group_range(&f.group) {
                    out.err(format!("{base}.{dir}[{k}].group"), e);
                }
            }
        }
        if peer
            .mesh_group
            .as_deref()
            .is_some_and(|g| g.trim().is_empty())
        {
            out.err(
                format!("{base}.mesh_group"),
                "mesh group name is empty; give a name or remove 'mesh_group'",
            );
        }
    }
}

fn check_control_plane(out: &mut Sink, cfg: &Config) {
    let c = &cfg.control_plane;
    let path = &c.rpf_provider;
    let accepted = "rpf_provider accepts \"disabled\" (default), \"kernel\", \"static\" or the absolute path of a Unix socket, e.g. \"/run/routing/babel.sock\"";
    match RpfProvider::parse(path) {
        None => out.err(
            "control_plane.rpf_provider",
            format!("'{}' is not an RPF provider; {accepted}", path.escape_debug()),
        ),
        Some(RpfProvider::Socket(_)) if path.len() > MAX_SOCKET_PATH_LEN => out.err(
            "control_plane.rpf_provider",
            format!(
                "rpf_provider path is {} bytes long; Unix socket paths are at most {MAX_SOCKET_PATH_LEN} bytes",
                path.len()
            ),
        ),
        Some(_) => {}
    }
    let mut seen: Vec<(Ipv4Addr, u8)> = Vec::new();
    for (i, r) in c.static_rpf.iter().enumerate() {
        let base = format!("control_plane.static_rpf[{i}]");
        match r.prefix() {
            None => out.err(
                join(&base, "source"),
                format!(
                    "'{}' is not a source prefix; write it in CIDR form with host bits zero, e.g. \"10.1.0.0/16\"",
                    r.source.escape_debug()
                ),
            ),
            Some((a, _)) if a.is_multicast() || a.is_broadcast() => out.err(
                join(&base, "source"),
                format!("source prefix {} is not unicast; RPF routes are toward unicast sources", r.source),
            ),
            Some(p) => {
                if let Some(j) = seen.iter().position(|q| *q == p) {
                    out.err(
                        join(&base, "source"),
                        format!("source prefix {} is already routed by control_plane.static_rpf[{j}]; give each prefix one route", r.source),
                    );
                }
                seen.push(p);
            }
        }
        check_interface(out, join(&base, "interface"), &r.interface);
        if let Some(n) = r.neighbor {
            check_unicast(out, join(&base, "neighbor"), n, "neighbor");
        }
    }
    if !EVENT_BUFFER_SIZE_RANGE.contains(&c.event_buffer_size) {
        out.err(
            "control_plane.event_buffer_size",
            format!(
                "event_buffer_size {} is out of range; use {} to {} (default 256)",
                c.event_buffer_size,
                EVENT_BUFFER_SIZE_RANGE.start(),
                EVENT_BUFFER_SIZE_RANGE.end()
            ),
        );
    }
}

fn check_multicast_ttl(out: &mut Sink, cfg: &Config) {
    if cfg.multicast_ttl == Some(0) {
        out.err(
            "multicast_ttl",
            "multicast_ttl 0 would drop every packet; use a TTL from 1 to 255, or remove 'multicast_ttl' for the default 1",
        );
    }
}

/// Pinning is checked against the file only: whether a CPU is online is
/// known when `mcrd` starts (like `cores`).
fn check_pinning(out: &mut Sink, cfg: &Config) {
    for (name, cpus) in &cfg.pinning {
        let base = format!("pinning.{name}");
        check_interface(out, base.clone(), name);
        if cpus.is_empty() {
            out.err(
                base.clone(),
                format!("pinning for '{name}' lists no CPU; list at least one (e.g. \"{name}\": [0]) or remove the entry"),
            );
        }
        for (i, c) in cpus.iter().enumerate() {
            if let Some(j) = cpus[..i].iter().position(|x| x == c) {
                out.err(
                    format!("{base}[{i}]"),
                    format!("CPU {c} is listed twice (also {base}[{j}]); list each CPU once"),
                );
            } else if let Some(cores) = &cfg.cores {
                if !cores.contains(c) {
                    out.err(
                        format!("{base}[{i}]"),
                        format!("CPU {c} is not in cores {cores:?}, so no engine runs there; pin to one of cores or add {c} to cores"),
                    );
                }
            }
        }
    }
}
