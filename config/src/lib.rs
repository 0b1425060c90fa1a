//! mcr configuration: the JSON5 schema, its defaults, validation with
//! actionable errors, and stable rule ids.
//!
//! # File format
//!
//! The configuration is one [JSON5](https://json5.org) object: comments
//! (`//`, `/* */`), unquoted keys, single-quoted strings and trailing commas
//! are allowed. Keys are exactly the snake_case names below; an unknown key is
//! an error (with a "did you mean" suggestion), never silently ignored. Every
//! key is optional unless marked **required**; an empty object `{}` is a
//! valid configuration that forwards nothing.
//!
//! ```json5
//! {
//!   // Interfaces must exist in the namespace where MCR runs
//!   rules: [
//!     { name: "namespace-forward",
//!       input: { interface: "veth-ns", group: "239.1.1.1", port: 5001 },
//!       outputs: [ { interface: "eth0", group: "239.1.1.1", port: 5001 } ] }
//!   ],
//!   control_plane: { rpf_provider: "/run/routing/babel.sock", external_neighbors_enabled: true, event_buffer_size: 512 }
//! }
//! ```
//!
//! Addresses are quoted dotted-quad IPv4 strings (`"239.1.1.1"`); IPv6 is not
//! supported yet. Interface names are Linux names: 1 to 15 bytes, no `/`, `:`
//! or whitespace.
//!
//! ## Top level
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `rules` | list of [rule](#rules) | `[]` | static forwarding rules |
//! | `cores` | list of CPU numbers | all online CPUs | CPUs that each run one data-plane engine; no duplicates, not empty |
//! | `multicast_ttl` | 1..=255 | `1` | IP TTL of multicast outputs that do not set `ttl` ([`Config::multicast_ttl`]) |
//! | `pinning` | object: interface name -> list of CPU numbers | `{}` | validated, **not acted on yet** (see [below](#pinning)) |
//! | `user` | string | none (stay root) | unprivileged user to drop to once sockets are open |
//! | `control_socket_group` | string | none | group owning the control socket (mode 0660) |
//! | `igmp` | [object](#igmp) | see below | IGMP querier and membership tracking |
//! | `pim` | [object](#pim) | see below | PIM-SM |
//! | `msdp` | [object](#msdp) | see below | MSDP |
//! | `control_plane` | [object](#control_plane) | see below | external control-plane integration |
//! | `data_plane` | [object](#data_plane) | see below | how datagrams are forwarded |
//! | `metrics` | [object](#metrics) | see below | the Prometheus/OpenMetrics endpoint |
//!
//! ## `rules`
//!
//! Each rule captures UDP traffic described by `input` and sends a byte-exact
//! copy of each payload to every entry of `outputs`.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `name` | string | none | optional; when present it is the rule id and must be unique, non-empty, at most 128 bytes, free of control, bidirectional-override, zero-width and line-separator characters, and not of the generated form `r-` + 16 hex digits |
//! | `input` | object | **required** | what to capture |
//! | `input.interface` | string | **required** | interface the traffic arrives on |
//! | `input.group` | IPv4 | **required** | destination address: a multicast group, or a unicast address (unicast-to-multicast); not `0.0.0.0` or `255.255.255.255` |
//! | `input.port` | 1..=65535 | **required** | destination UDP port |
//! | `input.source` | IPv4 | any source | accept only packets from this unicast source (source-specific) |
//! | `outputs` | list | **required**, non-empty | destinations |
//! | `outputs[].interface` | string | **required** | interface to send on |
//! | `outputs[].group` | IPv4 | **required** | destination: multicast group or unicast host (group/port translation is allowed); not `0.0.0.0` |
//! | `outputs[].port` | 1..=65535 | **required** | destination UDP port |
//! | `outputs[].ttl` | 1..=255 | `multicast_ttl` for multicast, 64 for unicast | IP TTL of sent packets ([`Output::effective_ttl`]) |
//! | `outputs[].when` | `"always"` or `"members"` | `"always"` | `"members"`: forward only while IGMP has a member of the (multicast) output group on the output interface ([`OutputWhen::Members`]) |
//!
//! Rejected: two rules with the same input (interface, group, port, source)
//! — merge their outputs instead; an output equal to its own rule's input
//! (same interface, group and port; it would loop); the same output twice in
//! one rule.
//!
//! ### Rule ids
//!
//! Every rule has a stable [`RuleId`], shown by `mcrctl list` and used by
//! `mcrctl remove`. A named rule's id is its name. An unnamed rule's id is
//! `r-` followed by 16 lowercase hex digits of the **64-bit FNV-1a** hash
//! (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) of the UTF-8
//! canonical input key
//!
//! ```text
//! interface|group|port|source
//! ```
//!
//! with `group`/`source` in dotted-quad form, `port` in decimal and `source`
//! written `*` when absent: `eth0|239.1.1.1|5001|*` gives
//! `r-f62ad393606390cd`. The id depends only on the input, so it is the same
//! across restarts, reloads, hosts and Rust versions, and it changes exactly
//! when the input changes.
//!
//! ## `pinning`
//!
//! The seed system's key: `pinning: { "eth0": [0, 1] }` names the CPUs
//! meant to serve traffic captured on an interface. mcr validates it (names
//! are interface names, each listed once; each list non-empty, without
//! duplicates, and inside `cores` when `cores` is set; at start, every CPU
//! must be one `mcrd` may run on) but does **not** act on it yet: every
//! engine (one per CPU of `cores`) captures on every input interface,
//! spread by `PACKET_FANOUT` flow hash.
//!
//! ## `igmp`
//!
//! Key names are the seed system's; times are in seconds unless the key
//! says `_ms`. mcrd runs an IGMP querier on every listed interface that
//! exists and is up (see `docs/reference.md`, "IGMP").
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `enabled` | bool | absent: on iff `querier_interfaces` is not empty | explicit on/off ([`IgmpConfig::is_enabled`]); `true` needs at least one querier interface |
//! | `querier_interfaces` | list of strings | `[]` | interfaces to act as querier on; each once |
//! | `version` | 2 or 3 | `3` | IGMP version (RFC 2236 / RFC 3376) |
//! | `query_interval` | 1..=31744 s | `125` | general query interval |
//! | `query_response_interval` | 1..=3174 s (v2: 1..=25) | `10` | max response time; shorter than `query_interval` |
//! | `robustness` | 1..=7 | `2` | robustness variable; also the startup and last member query counts |
//! | `last_member_query_interval_ms` | 100..=25500 ms | `1000` | gap between group-specific queries after a leave (RFC 3376 8.8); leave latency is this x `robustness` |
//! | `proxy` | `{ upstream: IF, downstream: [IF, ...] }` | absent | IGMP proxying (RFC 4605): downstream interfaces run the querier; their members are reported on `upstream` and routed from it ([`IgmpProxyConfig`]) |
//!
//! ## `pim`
//!
//! Neighbour discovery, DR election (RFC 7761 section 4.3) and the
//! distribution trees (section 4.5: `(*,G)`, `(S,G)`, `(S,G,rpt)` join
//! state, Register, Assert) run. Periods are in seconds.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `enabled` | bool | `false` | run PIM-SM (RFC 7761) |
//! | `router_id` | unicast IPv4 | none | this router's id |
//! | `interfaces` | list of `{ name, dr_priority?, hello_period? }` | `[]` | PIM interfaces, each once; per-interface values override the section's |
//! | `static_rp` | list of `{ group?, rp }` | `[]` | `group`: multicast CIDR (or one group = /32), default `"224.0.0.0/4"`, host bits zero, each range once; `rp`: unicast IPv4 |
//! | `rp_address` | unicast IPv4 | none | this router's address as a rendezvous point: the RP of groups mapped to it and of groups no `static_rp` covers |
//! | `spt_switchover` | `"immediate"` or `"never"` | `"immediate"` | when a last-hop router joins the source's tree: after the first packet, or never (stay on the shared tree) |
//! | `max_tree_entries` | 1..=1048576 | `16384` | bound of the `(*,G)` plus `(S,G)` entries; joins for new entries past it are dropped and counted |
//! | `hello_period` | 1..=18724 s | `30` | hello period of interfaces that do not set one (hold time is 3.5 x this) |
//! | `dr_priority` | u32 | `1` | DR priority of interfaces that do not set one |
//!
//! ## `msdp`
//!
//! MSDP (RFC 3618) sessions on TCP port 639. Times are in seconds.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `enabled` | bool | `false` | run MSDP (RFC 3618) |
//! | `local_address` | unicast IPv4 | none | this router's address for MSDP sessions (the TCP source, compared with each peer's to decide who connects); required when enabled with peers |
//! | `peers` | list of `{ address, description?, mesh_group?, default_peer?, sa_limit?, sa_filter_in?, sa_filter_out? }` | `[]` | peers by unicast address (each once, not `local_address`); `mesh_group` not blank; `default_peer` bool, default `false`; `sa_limit` 1..=1000000 SAs learned from the peer, default 10000; filters: lists of `{ source?, group?, action? }` (`source` a CIDR with host bits zero, default `"0.0.0.0/0"`; `group` a multicast CIDR or group, default `"224.0.0.0/4"`; `action` `"deny"` (default) or `"permit"`; first match decides, no match passes) |
//! | `keepalive_interval` | u32 ≥ 1 s | `60` | keepalive interval |
//! | `hold_time` | u32 s | `75` | at least 3 and longer than `keepalive_interval` |
//! | `sa_cache_limit` | 1..=1000000 | `20000` | most SA cache entries, all peers together |
//!
//! ## `control_plane`
//!
//! Defaults are the seed system's.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `rpf_provider` | string | `"disabled"` | `"disabled"`, `"kernel"`, `"static"` or the absolute path (at most 107 bytes) of an external provider's Unix socket ([`RpfProvider`]; protocol in `docs/rpf-provider.md`) |
//! | `external_neighbors_enabled` | bool | `true` | accept PIM neighbours injected through the control socket (`mcrctl pim add-neighbor`) |
//! | `static_rpf` | list of `{ source, interface, neighbor?, metric? }` | `[]` | the table of `rpf_provider: "static"`: `source` a unicast CIDR with host bits zero (bare address = /32), each prefix once; `interface` the upstream interface; `neighbor` the upstream router (unicast; absent = directly connected); `metric` u32, default 0 |
//! | `event_buffer_size` | 16..=1048576 | `256` | events buffered per subscriber before the oldest are dropped |
//!
//! ## Saving
//!
//! [`Config::to_json5`] writes every section with all its keys (defaults
//! included), and optional keys (`cores`, `pinning`, `multicast_ttl`,
//! `igmp.enabled`, per-interface PIM values, `router_id`, ...) only when
//! they are set, so parsing the text gives back an equal `Config` with the
//! same key names.
//!
//! ## `data_plane`
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `kernel_fast_path` | bool | `true` | forward rules whose outputs are all multicast inside the kernel, with a tc ingress program on the input interface (needs CAP_BPF and CAP_NET_ADMIN; without them, or with `false`, the engines forward everything) |
//! | `receive_ring` | integer | `0` | slots of a receive ring (`PACKET_RX_RING`) per engine and input interface, 64 to 65,536, instead of a receive queue (0): frames read without a system call each, and a flow's waiting datagrams sent to an output as one batch (less than half the engine CPU per packet in the benchmark), for slots x (MTU + 84) bytes held from the start (4,096 slots at MTU 1,500: 6.2 MiB per engine and input); read when mcrd starts |
//!
//! ## `metrics`
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `listen` | `"IP:PORT"` | none (no endpoint) | serve `GET /metrics` (OpenMetrics text) on this TCP address; port 0 is rejected |
//!
//! # Errors
//!
//! [`parse_str`] and [`load_file`] return a [`ConfigError`] holding
//! [`Diagnostic`]s, each shown as
//!
//! ```text
//! FILE:LINE:COL: KEY.PATH: what is wrong; how to fix it
//! ```
//!
//! e.g. `red.json5:9:62: rules[2].outputs[0].port: port 0 is not allowed; use a port from 1 to 65535`.
//! Syntax and type errors stop at the first one; semantic errors (duplicates,
//! ranges, addresses of the wrong kind) are all reported together. Lines and
//! columns are 1-based; columns count characters.
//! [`Config::validate`] and [`validate_rule`] run the same semantic checks
//! without source positions, for configuration built at runtime.

pub use std::net::Ipv4Addr;

mod addr;
mod diagnostic;
mod locate;
mod parse;
mod rule_id;
mod schema;
pub mod text;
mod validate;

#[cfg(test)]
mod tests;

pub use diagnostic::{ConfigError, Diagnostic};
pub use parse::{
    load_file, load_file_at, load_file_hashed, load_file_if_changed, parse_str, MAX_FILE_SIZE,
};
pub use rule_id::{canonical_key, fnv1a, fnv1a64, RuleId, FNV_OFFSET, FNV_PRIME};
pub use schema::{
    Config, ControlPlaneConfig, DataPlaneConfig, IgmpConfig, IgmpProxyConfig, Input, MetricsConfig,
    MsdpConfig, MsdpPeer, Output, OutputWhen, PimConfig, PimInterface, RpfProvider, Rule, SaFilter,
    SaFilterAction, SptSwitchover, StaticRp, StaticRpfRoute, Ttl, DEFAULT_MAX_TREE_ENTRIES,
    DEFAULT_MULTICAST_TTL, DEFAULT_UNICAST_TTL,
};
pub use validate::{
    validate_interface_name, validate_rule, EVENT_BUFFER_SIZE_RANGE, MAX_HELLO_PERIOD,
    MAX_INTERFACE_NAME_LEN, MAX_QUERY_INTERVAL, MAX_RULE_NAME_LEN,
};

impl Config {
    /// Semantic validation without source positions (e.g. for a configuration
    /// changed at runtime). [`parse_str`] runs the same checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let diags = validate::check_config(self);
        if diags.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new(diags))
        }
    }

    /// Pretty JSON5 text that [`parse_str`] reads back to an equal `Config`.
    pub fn to_json5(&self) -> String {
        match json5::to_string(self) {
            Ok(mut s) => {
                s.push('\n');
                s
            }
            // Cannot happen for these types; JSON is valid JSON5 anyway.
            Err(_) => serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string()),
        }
    }
}
