//! The control protocol: one JSON object per line each way.
//!
//! On connect the server sends a hello line:
//! `{"hello":"mcrd","version":"0.1.0","protocol":1}`. Each request is an
//! object with a `cmd` and that command's fields, optionally an `id` that the
//! answer echoes. Each answer is `{"ok":true,"result":{...}}` or
//! `{"ok":false,"error":{"code":"...","message":"..."}}`, in request order.
//! `docs/control-protocol.md` has an example of every command.

use super::api::{Reply, ReplyKind};
use mcr_config::Rule;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use strum::VariantNames;

/// Bumped when a request or answer changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request: `{"cmd":"NAME", ...fields}`. The same type is read by `mcrd`
/// and written by `mcrctl`; the command names (`cmd`) are the snake_case
/// variant names, listed by [`Request::VARIANTS`].
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::VariantNames, strum::IntoStaticStr,
)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum Request {
    /// Liveness check; answered with [`super::api::Pong`].
    Ping,
    /// Daemon and protocol version.
    Version,
    /// State and totals.
    Status,
    /// Every rule with id, origin and state.
    List,
    /// Adds a rule at run time, validated with the running rules.
    Add {
        /// As in the config file.
        rule: Rule,
    },
    /// Removes a rule by id (wins) or name.
    Remove {
        /// (`id` is the request's own correlation id.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule_id: Option<String>,
        /// The rule's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Counters and rates per rule, output and engine.
    Stats,
    /// One entry per engine.
    Cores,
    /// The running state as JSON5.
    ConfigShow,
    /// Validates a file as the daemon would load it.
    ConfigCheck {
        /// Absolute path, opened by the daemon.
        file: PathBuf,
    },
    /// Writes the running state as JSON5.
    ConfigSave {
        /// Default: the `--config` file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<PathBuf>,
    },
    /// The log filter in force.
    LogLevelGet,
    /// Sets the log filter (or one target's level).
    LogLevelSet {
        /// A level (`debug`) or a directive list.
        level: String,
        /// Only this target (e.g. `mcr_controlplane`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// Re-reads the config and applies the difference.
    Reload {
        /// Default: the `--config` file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<PathBuf>,
        /// Only report what would change.
        #[serde(default)]
        dry_run: bool,
    },
    /// IGMP groups learned, per interface (RFC 3376 6.2.1 state).
    IgmpGroups {
        /// Only this interface.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
    /// IGMP querier state and counters per interface.
    IgmpInterfaces,
    /// Runs IGMP on an interface at run time (undone by reload).
    IgmpEnable {
        /// Interface name.
        interface: String,
    },
    /// Stops IGMP on an interface at run time (undone by reload).
    IgmpDisable {
        /// Interface name.
        interface: String,
    },
    /// Turns the connection into a stream of event lines.
    Subscribe {
        /// Categories ([`EventCategory`] names); empty means all.
        #[serde(default)]
        events: Vec<String>,
    },
    /// PIM neighbours (RFC 7761 section 4.3).
    PimNeighbors,
    /// PIM interfaces: DR, timers, counters.
    PimInterfaces,
    /// Injects a PIM neighbour (needs
    /// `control_plane.external_neighbors_enabled`).
    PimAddNeighbor {
        /// A PIM interface.
        interface: String,
        /// The neighbour's address.
        address: std::net::Ipv4Addr,
        /// Its DR priority (default 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<u32>,
        /// Free text naming who injected it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// Removes an injected neighbour.
    PimRemoveNeighbor {
        /// Its interface.
        interface: String,
        /// Its address.
        address: std::net::Ipv4Addr,
    },
    /// Lists the injected neighbours.
    PimExternalNeighbors,
    /// Removes every injected neighbour (of one interface).
    PimClearNeighbors {
        /// Only this interface.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
    /// Adds (or replaces) a static RPF route (`rpf_provider: "static"`).
    PimAddRpfRoute {
        /// Source prefix, CIDR.
        source: String,
        /// Upstream interface.
        interface: String,
        /// Upstream neighbour.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        neighbor: Option<std::net::Ipv4Addr>,
        /// Metric (default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metric: Option<u32>,
    },
    /// Removes the static RPF route of a prefix.
    PimRemoveRpfRoute {
        /// Source prefix, CIDR.
        source: String,
    },
    /// Lists the static RPF routes.
    PimListRpfRoutes,
    /// Removes every static RPF route.
    PimClearRpfRoutes,
    /// Asks the RPF provider about a source.
    PimQueryRpf {
        /// The source address.
        source: std::net::Ipv4Addr,
    },
    /// The PIM-SM tree state: `(*,G)`, `(S,G)`, `(S,G,rpt)` entries.
    PimJoinState,
    /// The RP mappings; with `group`, which RP serves it.
    PimRp {
        /// A group to look up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<std::net::Ipv4Addr>,
    },
    /// Adds or replaces a static RP mapping at run time (until the next
    /// reload; `config_save` writes it).
    PimSetStaticRp {
        /// Group range, CIDR (or one group).
        group: String,
        /// The RP's address.
        rp: std::net::Ipv4Addr,
    },
    /// Sets this router's RP address at run time, or with `clear` takes
    /// it away (until the next reload; `config_save` writes it).
    PimSetRp {
        /// The address (absent with `clear`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<std::net::Ipv4Addr>,
        /// No `rp_address` from now on (the file's is set aside too).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        clear: bool,
    },
    /// Every route of the MRIB with where it is installed and its counters.
    Mroute,
    /// MSDP peers: state, uptime, SA counters, last error (RFC 3618).
    MsdpPeers,
    /// The MSDP SA cache (RFC 3618 section 5.3).
    MsdpSaCache {
        /// Only this group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<std::net::Ipv4Addr>,
        /// Only entries learned from this peer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<std::net::Ipv4Addr>,
    },
    /// Adds (or replaces) an MSDP peer at run time (written by
    /// `config_save`, undone by reload).
    MsdpAddPeer {
        /// The peer's address.
        address: std::net::Ipv4Addr,
        /// Free text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Mesh group name (RFC 3618 section 10.2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mesh_group: Option<String>,
        /// A default peer (RFC 3618 10.1.3).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        default_peer: bool,
    },
    /// Removes an MSDP peer at run time (its session closes).
    MsdpRemovePeer {
        /// The peer's address.
        address: std::net::Ipv4Addr,
    },
}

impl Request {
    /// The command name, as sent in `cmd`.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// Which struct the answer's `result` is.
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            Request::Ping => ReplyKind::Pong,
            Request::Version => ReplyKind::Version,
            Request::Status => ReplyKind::Status,
            Request::List => ReplyKind::List,
            Request::Add { .. } => ReplyKind::Added,
            Request::Remove { .. } => ReplyKind::Removed,
            Request::Stats => ReplyKind::Stats,
            Request::Cores => ReplyKind::Cores,
            Request::ConfigShow => ReplyKind::ConfigText,
            Request::ConfigCheck { .. } => ReplyKind::ConfigChecked,
            Request::ConfigSave { .. } => ReplyKind::Saved,
            Request::LogLevelGet | Request::LogLevelSet { .. } => ReplyKind::LogFilter,
            Request::Reload { .. } => ReplyKind::Reload,
            Request::Subscribe { .. } => ReplyKind::Subscribed,
            Request::PimNeighbors => ReplyKind::PimNeighbors,
            Request::PimInterfaces => ReplyKind::PimInterfaces,
            Request::PimAddNeighbor { .. }
            | Request::PimRemoveNeighbor { .. }
            | Request::PimExternalNeighbors
            | Request::PimClearNeighbors { .. } => ReplyKind::PimExternalNeighbors,
            Request::PimAddRpfRoute { .. }
            | Request::PimRemoveRpfRoute { .. }
            | Request::PimListRpfRoutes
            | Request::PimClearRpfRoutes => ReplyKind::PimRpfRoutes,
            Request::PimQueryRpf { .. } => ReplyKind::PimRpfAnswer,
            Request::PimJoinState => ReplyKind::PimJoinState,
            Request::PimRp { .. } | Request::PimSetStaticRp { .. } | Request::PimSetRp { .. } => {
                ReplyKind::PimRp
            }
            Request::Mroute => ReplyKind::Mroutes,
            Request::MsdpPeers | Request::MsdpAddPeer { .. } | Request::MsdpRemovePeer { .. } => {
                ReplyKind::MsdpPeers
            }
            Request::MsdpSaCache { .. } => ReplyKind::MsdpSaCache,
            Request::IgmpGroups { .. } => ReplyKind::IgmpGroups,
            Request::IgmpInterfaces => ReplyKind::IgmpInterfaces,
            Request::IgmpEnable { .. } | Request::IgmpDisable { .. } => ReplyKind::IgmpToggled,
        }
    }

    /// The request line (without the newline), with an optional `id`.
    pub fn to_line(&self, id: Option<&Value>) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let (Some(id), Value::Object(m)) = (id, &mut v) {
            m.insert("id".into(), id.clone());
        }
        v.to_string()
    }
}

/// Event categories a client can subscribe to. `pim` and `msdp` carry
/// nothing until those protocols run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::VariantNames,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventCategory {
    /// Rule state changes.
    Rules,
    /// Interfaces appearing and going away.
    Interfaces,
    /// Reloads, applied or refused.
    Reload,
    /// IGMP membership and querier changes.
    Igmp,
    /// PIM neighbours, routes and join state.
    Pim,
    /// MSDP peers and Source-Active messages.
    Msdp,
    /// Routes added to, changed in or removed from the MRIB, with where
    /// they are installed.
    Mroute,
}

/// Every event category name.
pub const EVENT_CATEGORIES: &[&str] = EventCategory::VARIANTS;

/// Every command name, for "unknown command" answers.
pub const COMMANDS: &[&str] = Request::VARIANTS;

/// A stable, machine-readable error code (`docs/control-protocol.md` lists
/// when each is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not JSON or not UTF-8.
    InvalidJson,
    /// JSON, but not an object with a `cmd` string.
    InvalidRequest,
    /// `cmd` names no command.
    UnknownCommand,
    /// A field is missing, unknown or of the wrong type.
    InvalidArguments,
    /// The line is over the size limit.
    RequestTooLarge,
    /// The connection was idle or paused inside a line too long.
    Timeout,
    /// Too many clients.
    Busy,
    /// `add`: the rule fails validation.
    InvalidRule,
    /// `remove`: no such rule.
    NotFound,
    /// `config_check`/`reload`: the file is unreadable or invalid.
    InvalidConfig,
    /// `config_save`: the file cannot be written.
    Io,
    /// `config_save`/`reload`/`config_check`: a path outside what a client
    /// may name (the running config file or a file in `--save-dir`).
    NotPermitted,
    /// Not available in this build.
    Unsupported,
    /// Switched off by the configuration (e.g. `pim_add_neighbor` with
    /// `control_plane.external_neighbors_enabled: false`, static RPF routes
    /// with another `rpf_provider`).
    Disabled,
    /// The RPF provider could not answer (down, or no answer in time).
    Unavailable,
    /// A request on a connection that streams events.
    Subscribed,
}

/// A machine-readable error code plus a message for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable; scripts match on it.
    pub code: ErrorCode,
    /// For people; may change.
    pub message: String,
}

/// What the daemon answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Carried out; the typed result (serialised straight into the line,
    /// with no intermediate `Value` tree, which matters for `stats` with
    /// 100,000 rules).
    Ok(Reply),
    /// Refused, and why.
    Err(ErrorBody),
}

/// An answer line, borrowing its parts (keys in the order a `Value` map
/// would sort them).
#[derive(Serialize)]
struct Line<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Reply>,
}

impl Response {
    /// A refusal.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::Err(ErrorBody {
            code,
            message: message.into(),
        })
    }

    /// A success with a typed result.
    pub fn ok(reply: impl Into<Reply>) -> Response {
        Response::Ok(reply.into())
    }

    /// Whether this is a success.
    pub fn is_ok(&self) -> bool {
        !matches!(self, Response::Err(_))
    }

    /// The answer line (without the newline), echoing the request's `id`.
    pub fn to_line(&self, id: Option<&Value>) -> String {
        let line = match self {
            Response::Ok(result) => Line {
                id,
                ok: true,
                error: None,
                result: Some(result),
            },
            Response::Err(e) => Line {
                id,
                ok: false,
                error: Some(e),
                result: None,
            },
        };
        serde_json::to_string(&line).unwrap_or_else(|_| {
            r#"{"ok":false,"error":{"code":"internal","message":"answer not serializable"}}"#.into()
        })
    }
}

/// Deserialises any JSON, failing on an object that has a key twice, at
/// any depth.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut a: A,
    ) -> Result<NoDuplicateKeys, A::Error> {
        while a.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut a: A,
    ) -> Result<NoDuplicateKeys, A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(k) = a.next_key::<String>()? {
            a.next_value::<NoDuplicateKeys>()?;
            if let Some(k) = seen.replace(k) {
                return Err(serde::de::Error::custom(format!(
                    "key '{k}' appears more than once"
                )));
            }
        }
        Ok(NoDuplicateKeys)
    }
}

/// The first line on every connection.
pub fn hello_line() -> String {
    serde_json::to_string(&super::api::Hello {
        hello: "mcrd".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: PROTOCOL_VERSION,
    })
    .unwrap_or_default()
}

/// Parses a request line. On failure, the error answer to send; either way
/// the request's `id` (if it had one) for the answer to echo.
pub fn parse(line: &str) -> (Option<Value>, Result<Request, Response>) {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                Err(Response::error(
                    ErrorCode::InvalidJson,
                    format!("request is not valid JSON: {e}"),
                )),
            )
        }
    };
    // A `Value` keeps the last of two equal keys: `{"cmd":"ping","cmd":
    // "remove",...}` would run a remove that a filter reading the first
    // `cmd` took for a ping. Refuse the line instead.
    if let Err(e) = serde_json::from_str::<NoDuplicateKeys>(line) {
        return (
            None,
            Err(Response::error(
                ErrorCode::InvalidRequest,
                format!("request is ambiguous: {e}"),
            )),
        );
    }
    let Value::Object(mut map) = value else {
        return (
            None,
            Err(Response::error(
                ErrorCode::InvalidRequest,
                "a request is a JSON object such as {\"cmd\":\"status\"}",
            )),
        );
    };
    let id = map.remove("id");
    let cmd = match map.get("cmd") {
        Some(Value::String(c)) => c.clone(),
        _ => {
            return (
                id,
                Err(Response::error(
                    ErrorCode::InvalidRequest,
                    "the request has no \"cmd\" string, e.g. {\"cmd\":\"status\"}",
                )),
            )
        }
    };
    if !COMMANDS.contains(&cmd.as_str()) {
        return (
            id,
            Err(Response::error(
                ErrorCode::UnknownCommand,
                format!("unknown command '{cmd}'; commands: {}", COMMANDS.join(", ")),
            )),
        );
    }
    match serde_json::from_value(Value::Object(map)) {
        Ok(req) => (id, Ok(req)),
        Err(e) => (
            id,
            Err(Response::error(
                ErrorCode::InvalidArguments,
                format!("{cmd}: {e}"),
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_commands_with_ids() {
        let (id, req) = parse(r#"{"cmd":"remove","name":"cam1","id":7}"#);
        assert_eq!(id, Some(json!(7)));
        assert_eq!(
            req.unwrap(),
            Request::Remove {
                rule_id: None,
                name: Some("cam1".into())
            }
        );
        assert_eq!(parse(r#"{"cmd":"ping"}"#).1.unwrap(), Request::Ping);
    }

    #[test]
    fn error_answers_name_the_problem() {
        let code = |line: &str| match parse(line).1 {
            Err(Response::Err(e)) => e.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidRequest);
        assert_eq!(code(r#"{"command":"ping"}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(r#"{"cmd":"explode"}"#), ErrorCode::UnknownCommand);
        assert_eq!(
            code(r#"{"cmd":"reload","bogus":1}"#),
            ErrorCode::InvalidArguments
        );
        assert_eq!(code(r#"{"cmd":"add"}"#), ErrorCode::InvalidArguments);
    }

    #[test]
    fn answers_echo_ids() {
        let line = Response::ok(super::super::api::Pong { pong: true }).to_line(Some(&json!("a")));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["ok"], true);
        let line = Response::error(ErrorCode::Busy, "y").to_line(None);
        assert_eq!(
            line,
            r#"{"error":{"code":"busy","message":"y"},"ok":false}"#
        );
    }

    #[test]
    fn requests_round_trip_through_their_line() {
        let reqs = [
            Request::Ping,
            Request::Remove {
                rule_id: Some("a".into()),
                name: None,
            },
            Request::Reload {
                file: Some("/x.json5".into()),
                dry_run: true,
            },
            Request::LogLevelSet {
                level: "debug".into(),
                target: None,
            },
            Request::Subscribe {
                events: vec!["pim".into()],
            },
            Request::IgmpGroups { interface: None },
            Request::IgmpGroups {
                interface: Some("eth1".into()),
            },
            Request::IgmpInterfaces,
            Request::Mroute,
            Request::IgmpEnable {
                interface: "eth1".into(),
            },
            Request::IgmpDisable {
                interface: "eth1".into(),
            },
        ];
        for r in reqs {
            let line = r.to_line(Some(&json!(3)));
            let (id, back) = parse(&line);
            assert_eq!(id, Some(json!(3)));
            assert_eq!(back.unwrap(), r, "{line}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let code = |line: &str| match parse(line).1 {
            Err(Response::Err(e)) => (e.code, e.message),
            other => panic!("{other:?}"),
        };
        let (c, m) = code(r#"{"cmd":"ping","cmd":"remove","name":"x"}"#);
        assert_eq!(c, ErrorCode::InvalidRequest);
        assert!(m.contains("'cmd' appears more than once"), "{m}");
        let (c, _) = code(r#"{"cmd":"add","rule":{"input":{"port":1,"port":2}}}"#);
        assert_eq!(c, ErrorCode::InvalidRequest);
        assert_eq!(
            parse(r#"{"cmd":"ping","id":[{"a":1},{"a":2}]}"#).1.unwrap(),
            Request::Ping
        );
    }

    #[test]
    fn command_names_are_the_variants() {
        assert_eq!(Request::Ping.name(), "ping");
        assert_eq!(Request::LogLevelGet.name(), "log_level_get");
        assert!(COMMANDS.contains(&"config_save"));
        assert!(COMMANDS.contains(&"igmp_groups"));
        assert_eq!(COMMANDS.len(), 39);
        assert_eq!(
            EVENT_CATEGORIES,
            [
                "rules",
                "interfaces",
                "reload",
                "igmp",
                "pim",
                "msdp",
                "mroute"
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }
    }
}
