//! The control protocol: one JSON object per line each way.
//!
//! On connect the server sends a hello line:
//! `{"hello":"mcrd","version":"0.1.0","protocol":1}`. Each request is an
//! object with a `cmd` and that command's fields, optionally an `id` that the
//! answer echoes. Each answer is `{"ok":true,"result":{...}}` or
//! `{"ok":false,"error":{"code":"...","message":"..."}}`, in request order.
//! `docs/control-protocol.md` has an example of every command.

use mcr_config::Rule;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Bumped when a request or answer changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Ping,
    Version,
    Status,
    List,
    Add {
        rule: Rule,
    },
    Remove {
        /// (`id` is the request's own correlation id.)
        #[serde(default)]
        rule_id: Option<String>,
        #[serde(default)]
        name: Option<String>,
    },
    Stats,
    Cores,
    ConfigShow,
    ConfigCheck {
        file: PathBuf,
    },
    ConfigSave {
        #[serde(default)]
        file: Option<PathBuf>,
    },
    LogLevelGet,
    LogLevelSet {
        level: String,
        #[serde(default)]
        target: Option<String>,
    },
    Reload {
        #[serde(default)]
        file: Option<PathBuf>,
        #[serde(default)]
        dry_run: bool,
    },
    /// Turns the connection into a stream of event lines.
    Subscribe {
        #[serde(default)]
        events: Vec<String>,
    },
}

/// Event categories a client can subscribe to. `igmp`, `pim` and `msdp`
/// carry nothing until those protocols run.
pub const EVENT_CATEGORIES: &[&str] = &["rules", "interfaces", "reload", "igmp", "pim", "msdp"];

/// Every command name, for "unknown command" answers.
pub const COMMANDS: &[&str] = &[
    "ping",
    "version",
    "status",
    "list",
    "add",
    "remove",
    "stats",
    "cores",
    "config_show",
    "config_check",
    "config_save",
    "log_level_get",
    "log_level_set",
    "reload",
    "subscribe",
];

/// A machine-readable error code plus a message for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ok(Value),
    /// A result already serialized as JSON text: large answers (`stats`
    /// with 100,000 rules) skip building and copying a `Value` tree.
    OkText(String),
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
    result: Option<&'a Value>,
}

impl Response {
    pub fn error(code: &'static str, message: impl Into<String>) -> Response {
        Response::Err(ErrorBody {
            code,
            message: message.into(),
        })
    }

    /// Whether this is a success.
    pub fn is_ok(&self) -> bool {
        !matches!(self, Response::Err(_))
    }

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
            Response::OkText(text) => {
                let id = id.map(|i| format!("\"id\":{i},")).unwrap_or_default();
                return format!("{{{id}\"ok\":true,\"result\":{text}}}");
            }
        };
        serde_json::to_string(&line).unwrap_or_else(|_| {
            r#"{"ok":false,"error":{"code":"internal","message":"answer not serializable"}}"#.into()
        })
    }
}

pub fn hello_line() -> String {
    json!({
        "hello": "mcrd",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL_VERSION,
    })
    .to_string()
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
                    "invalid_json",
                    format!("request is not valid JSON: {e}"),
                )),
            )
        }
    };
    let Value::Object(mut map) = value else {
        return (
            None,
            Err(Response::error(
                "invalid_request",
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
                    "invalid_request",
                    "the request has no \"cmd\" string, e.g. {\"cmd\":\"status\"}",
                )),
            )
        }
    };
    if !COMMANDS.contains(&cmd.as_str()) {
        return (
            id,
            Err(Response::error(
                "unknown_command",
                format!("unknown command '{cmd}'; commands: {}", COMMANDS.join(", ")),
            )),
        );
    }
    match serde_json::from_value(Value::Object(map)) {
        Ok(req) => (id, Ok(req)),
        Err(e) => (
            id,
            Err(Response::error("invalid_arguments", format!("{cmd}: {e}"))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(code("not json"), "invalid_json");
        assert_eq!(code("[1,2]"), "invalid_request");
        assert_eq!(code(r#"{"command":"ping"}"#), "invalid_request");
        assert_eq!(code(r#"{"cmd":"explode"}"#), "unknown_command");
        assert_eq!(code(r#"{"cmd":"reload","bogus":1}"#), "invalid_arguments");
        assert_eq!(code(r#"{"cmd":"add"}"#), "invalid_arguments");
    }

    #[test]
    fn answers_echo_ids() {
        let line = Response::Ok(json!({"pong":true})).to_line(Some(&json!("a")));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["ok"], true);
        let line = Response::error("x", "y").to_line(None);
        assert_eq!(line, r#"{"error":{"code":"x","message":"y"},"ok":false}"#);
        let line = Response::OkText(r#"{"n":1}"#.into()).to_line(Some(&json!(7)));
        assert_eq!(line, r#"{"id":7,"ok":true,"result":{"n":1}}"#);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }
    }
}
