//! Reading text into a [`Config`]: JSON5 syntax and type errors (via serde),
//! then semantic validation, each error located in the source.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::de::IgnoredAny;
use serde_path_to_error::Segment;

use crate::diagnostic::{ConfigError, Diagnostic};
use crate::locate::{locate, locate_second_key};
use crate::schema::Config;
use crate::validate::check_config;

/// Config files larger than this are refused (a config of 10,000 rules is
/// about 2 MiB).
pub const MAX_FILE_SIZE: u64 = 64 << 20;

/// Opens `path` for reading without ever blocking: `O_NONBLOCK` (a FIFO
/// opens at once and is refused below instead of waiting for a writer),
/// `O_NOCTTY`, `O_CLOEXEC`; `O_NOFOLLOW` too when `nofollow`. The path
/// itself may be a symlink otherwise (e.g. /etc/mcr/mcrd.json5 pointing
/// into a package's directory is a legitimate admin choice).
fn open_guarded(dir: Option<BorrowedFd<'_>>, path: &Path, nofollow: bool) -> io::Result<File> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is a NUL-terminated string that outlives the call, and
    // `dirfd` is AT_FDCWD or a descriptor borrowed for the call.
    let fd = unsafe { libc::openat(dirfd, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Reads a whole config file from one descriptor: it must be a regular
/// file (checked on the descriptor, so no later swap of the path matters)
/// of at most [`MAX_FILE_SIZE`] bytes, read at most that far.
fn read_guarded(file: File) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let too_big = |n: u64| {
        io::Error::other(format!(
            "{n} bytes is more than the {} MiB a config file may have",
            MAX_FILE_SIZE >> 20
        ))
    };
    if meta.len() > MAX_FILE_SIZE {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after fstat: read one byte past the cap to see it.
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Parses bytes read by [`read_guarded`]; the hash is of exactly them.
fn parse_bytes(bytes: io::Result<Vec<u8>>, origin: &str) -> Result<(Config, u64), ConfigError> {
    let cannot = |e: String| -> ConfigError {
        Diagnostic {
            file: Some(origin.to_string()),
            ..Diagnostic::new("", format!("cannot read configuration file: {e}"))
        }
        .into()
    };
    let bytes = bytes.map_err(|e| cannot(e.to_string()))?;
    let hash = crate::fnv1a64(&bytes);
    let text = String::from_utf8(bytes).map_err(|_| cannot("it is not UTF-8 text".into()))?;
    Ok((parse_str(&text, origin)?, hash))
}

/// Reads, parses and validates a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load_file_hashed(path).map(|(c, _)| c)
}

/// [`load_file`], also returning the FNV-1a hash of the bytes parsed. The
/// file is opened once and read once: what is hashed is what was validated
/// and is applied, and the path is never opened again (so swapping it for a
/// FIFO or a huge file after the check changes nothing).
pub fn load_file_hashed(path: &Path) -> Result<(Config, u64), ConfigError> {
    let origin = path.display().to_string();
    parse_bytes(
        open_guarded(None, path, false).and_then(read_guarded),
        &origin,
    )
}

/// [`load_file_hashed`], except that when the file's bytes hash to `known`
/// (the hash of the config already running) nothing is parsed and `None`
/// is returned: an unchanged file of 100,000 rules costs a read and a hash
/// (milliseconds) instead of a parse (seconds). Same single open and read.
///
/// # Errors
/// As [`load_file_hashed`], for a file that changed; a file that cannot be
/// read is an error whatever `known` is.
pub fn load_file_if_changed(path: &Path, known: u64) -> Result<Option<(Config, u64)>, ConfigError> {
    let origin = path.display().to_string();
    let bytes = open_guarded(None, path, false).and_then(read_guarded);
    if let Ok(b) = &bytes {
        if crate::fnv1a64(b) == known {
            return Ok(None);
        }
    }
    parse_bytes(bytes, &origin).map(Some)
}

/// [`load_file_hashed`] for the entry `name` of the open directory `dir`,
/// never following a symlink there (`O_NOFOLLOW`). `origin` names the file
/// in messages.
pub fn load_file_at(
    dir: BorrowedFd<'_>,
    name: &Path,
    origin: &str,
) -> Result<(Config, u64), ConfigError> {
    parse_bytes(
        open_guarded(Some(dir), name, true).and_then(read_guarded),
        origin,
    )
}

/// Parses and validates configuration text. `origin` (usually the file name)
/// is shown in every diagnostic; pass `""` to omit it.
pub fn parse_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let file = (!origin.is_empty()).then(|| origin.to_string());
    let config = deserialize(text).map_err(|mut d| {
        d.file = file.clone();
        ConfigError::from(d)
    })?;
    let mut diags = check_config(&config);
    if diags.is_empty() {
        return Ok(config);
    }
    for d in &mut diags {
        d.file = file.clone();
        if let Some((line, col)) = locate(text, &d.path) {
            d.line = Some(line);
            d.column = Some(col);
        }
    }
    Err(ConfigError::new(diags))
}

fn deserialize(text: &str) -> Result<Config, Diagnostic> {
    let mut de = json5::Deserializer::from_str(text);
    let config: Config = match serde_path_to_error::deserialize(&mut de) {
        Ok(c) => c,
        Err(e) => return Err(serde_diagnostic(text, e.path(), e.inner())),
    };
    // The path-tracking pass does not reject text after the top-level value;
    // a second, untyped pass does.
    if let Err(e) = json5::from_str::<IgnoredAny>(text) {
        let msg = match e.code() {
            Some(code) => syntax_message(code, &raw_message(&e), true),
            None => raw_message(&e),
        };
        return Err(positioned(text, "", &e, msg));
    }
    Ok(config)
}

fn raw_message(e: &json5::Error) -> String {
    let full = e.to_string();
    match e.position() {
        Some(p) => full
            .strip_suffix(&format!(" at {p}"))
            .map(str::to_string)
            .unwrap_or(full),
        None => full,
    }
}

fn positioned(text: &str, path: &str, e: &json5::Error, message: String) -> Diagnostic {
    let mut d = Diagnostic::new(path, message);
    if let Some(p) = e.position() {
        d.line = Some(p.line + 1);
        d.column = Some(p.column + 1);
    } else if let Some((l, c)) = locate(text, path) {
        d.line = Some(l);
        d.column = Some(c);
    }
    d
}

fn render_path(segs: &[&Segment]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            // Where the parser stopped before reading a key: no segment.
            Segment::Unknown => {}
        }
    }
    s
}

fn where_(path: &str) -> String {
    if path.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in {path}")
    }
}

/// Turns a serde/json5 error into a diagnostic with an actionable message.
fn serde_diagnostic(text: &str, path: &serde_path_to_error::Path, e: &json5::Error) -> Diagnostic {
    let segs: Vec<&Segment> = path.iter().collect();
    let raw = raw_message(e);

    if let Some(code) = e.code() {
        let path_s = render_path(&segs);
        let leaf_hint = leaf_key(&segs)
            .and_then(key_hint)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        let msg = match wrong_type(code) {
            // The value has the wrong type (json5 reports these as codes).
            Some(expected) => format!("wrong type: expected {expected} here{leaf_hint}"),
            None => syntax_message(code, &raw, path_s.is_empty()),
        };
        return positioned(text, &path_s, e, msg);
    }

    if let Some((field, expected)) = parse_unknown_field(&raw) {
        // The path may or may not already end with the unknown key.
        let container = match segs.last() {
            Some(Segment::Map { key }) if *key == field => render_path(&segs[..segs.len() - 1]),
            _ => render_path(&segs),
        };
        let key_path = if container.is_empty() {
            field.clone()
        } else {
            format!("{container}.{field}")
        };
        let msg = match renamed(&field, &expected) {
            Some(new) => format!(
                "unknown key '{field}' {}; did you mean '{new}'? (the key now has the seed system's name)",
                where_(&container)
            ),
            None => match suggest(&field, &expected) {
            Some(s) => format!(
                "unknown key '{field}' {}; did you mean '{s}'?",
                where_(&container)
            ),
            None if expected.is_empty() => format!(
                "unknown key '{field}' {}; it takes no keys",
                where_(&container)
            ),
            None => format!(
                "unknown key '{field}' {}; valid keys are: {}",
                where_(&container),
                expected.join(", ")
            ),
            },
        };
        return positioned(text, &key_path, e, msg);
    }

    let path_s = render_path(&segs);
    if let Some(field) = between(&raw, "missing field `", "`") {
        let msg = format!(
            "missing required key '{field}' {}{}",
            where_(&path_s),
            key_hint(field)
                .map(|h| format!("; {h}"))
                .unwrap_or_default()
        );
        return positioned(text, &path_s, e, msg);
    }
    if let Some(field) = between(&raw, "duplicate field `", "`") {
        let msg = format!(
            "key '{field}' appears more than once {}; keep only one",
            where_(&path_s)
        );
        return positioned(text, &path_s, e, msg);
    }

    // A key given twice in `pinning` (a map, so serde does not catch it):
    // point at the second one, the one to remove.
    if let Some(name) = between(&raw, "interface '", "' is pinned twice") {
        let mut d = Diagnostic::new(format!("pinning.{name}"), raw.clone());
        if let Some((l, c)) = locate_second_key(text, "pinning", name) {
            d.line = Some(l);
            d.column = Some(c);
        }
        return d;
    }
    let hint = leaf_key(&segs).and_then(key_hint);
    let msg = match type_error(&raw) {
        Some((kind, found, expected)) => {
            let found = found.replace('`', "");
            let core = if kind == "value" && found.starts_with("integer") {
                format!("{found} is out of range")
            } else {
                format!(
                    "wrong type: found {found}, expected {}",
                    friendly_expected(expected)
                )
            };
            match hint {
                Some(h) => format!("{core}; {h}"),
                None => core,
            }
        }
        None => raw,
    };
    positioned(text, &path_s, e, msg)
}

/// The key whose value is being read, for hints (`cores[]` for list items).
fn leaf_key<'a>(segs: &[&'a Segment]) -> Option<&'a str> {
    match segs.last()? {
        Segment::Map { key } => Some(key.as_str()),
        Segment::Seq { .. } => match (segs.iter().rev().nth(1), segs.iter().rev().nth(2)) {
            (Some(Segment::Map { key }), _) if key == "cores" => Some("cores[]"),
            (Some(Segment::Map { .. }), Some(Segment::Map { key })) if key == "pinning" => {
                Some("pinning[]")
            }
            _ => None,
        },
        _ => None,
    }
}

/// Splits serde's "invalid type: X, expected Y" / "invalid value: X, expected Y".
fn type_error(raw: &str) -> Option<(&str, &str, &str)> {
    let (kind, rest) = if let Some(r) = raw.strip_prefix("invalid type: ") {
        ("type", r)
    } else {
        ("value", raw.strip_prefix("invalid value: ")?)
    };
    let (found, expected) = rest.split_once(", expected ")?;
    Some((kind, found, expected))
}

fn wrong_type(code: json5::ErrorCode) -> Option<&'static str> {
    use json5::ErrorCode::*;
    Some(match code {
        ExpectedBool => "true or false",
        ExpectedNumber => "a number",
        ExpectedString => "a quoted string",
        ExpectedNull => "null",
        ExpectedOpeningBrace => "an object { ... }",
        ExpectedOpeningBracket => "a list [ ... ]",
        ExpectedStringOrObject => "a quoted string or an object",
        _ => return None,
    })
}

fn syntax_message(code: json5::ErrorCode, raw: &str, top: bool) -> String {
    use json5::ErrorCode::*;
    let hint = match code {
        ExpectedComma => " (is a ',' missing between two entries, or a closing '}' or ']'?)",
        ExpectedColon => " (write key: value)",
        LeadingZero => " (remove the leading zero)",
        EofParsingObject | EofParsingArray | EofParsingValue if top => {
            " (no configuration object found; an empty configuration is written {})"
        }
        EofParsingObject | EofParsingArray => " (is a closing '}' or ']' missing?)",
        EofParsingString | LineTerminatorInString => " (is a closing quote missing?)",
        EofParsingComment => " (is a closing */ missing?)",
        TrailingCharacters => " (text after the closing '}' of the configuration)",
        _ => "",
    };
    format!("JSON5 syntax error: {raw}{hint}")
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(start)?;
    rest.find(end).map(|i| &rest[..i])
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn parse_unknown_field(raw: &str) -> Option<(String, Vec<String>)> {
    let field = between(raw, "unknown field `", "`")?;
    let rest = &raw["unknown field `".len() + field.len() + 1..];
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

/// Keys of mcr's earlier protocol sections and the seed system's names
/// that replaced them, as (old, new). They were never acted on, so they
/// are not accepted as aliases (one name per setting keeps `config save`
/// unambiguous), but a file using them is told the new name.
const RENAMED: &[(&str, &str)] = &[
    ("interfaces", "querier_interfaces"),
    ("query_interval_secs", "query_interval"),
    ("query_response_interval_secs", "query_response_interval"),
    ("rp", "static_rp"),
    ("hello_interval_secs", "hello_period"),
    ("address", "rp"),
    ("group_range", "group"),
    ("keepalive_secs", "keepalive_interval"),
    ("hold_time_secs", "hold_time"),
];

/// The new name of a renamed key, when that name is valid where the old
/// one was found (so `address` maps to `rp` only inside `static_rp`).
fn renamed(field: &str, valid: &[String]) -> Option<&'static str> {
    RENAMED
        .iter()
        .find(|(old, new)| *old == field && valid.iter().any(|v| v == new))
        .map(|(_, new)| *new)
}

/// The closest valid key, if it is close enough to be a likely typo.
fn suggest(field: &str, valid: &[String]) -> Option<String> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    if let Some(v) = valid.iter().find(|v| norm(v) == norm(field)) {
        return Some(v.clone());
    }
    valid
        .iter()
        .map(|v| (edit_distance(field, v), v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v.clone())
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Replaces Rust type names in serde's "expected ..." with words a user knows.
fn friendly_expected(expected: &str) -> String {
    match expected {
        "u8" => "an integer from 0 to 255".to_string(),
        "u16" => "an integer from 0 to 65535".to_string(),
        "u32" => "an integer from 0 to 4294967295".to_string(),
        "usize" => "a non-negative integer".to_string(),
        "a boolean" => "true or false".to_string(),
        "a sequence" => "a list [ ... ]".to_string(),
        "a string" => "a quoted string".to_string(),
        e if e.starts_with("struct ") => "an object { ... }".to_string(),
        e => e.to_string(),
    }
}

/// What a key expects, for error messages.
fn key_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "port" => "a port is an integer from 1 to 65535, e.g. port: 5001",
        "ttl" => "ttl is an integer from 1 to 255, e.g. ttl: 16",
        "group" => "group is a quoted IPv4 address, e.g. group: \"239.1.1.1\"",
        "source" | "address" | "local_address" | "router_id" | "rp_address" | "rp" => {
            "write a quoted unicast IPv4 address, e.g. \"10.0.0.1\""
        }
        "interface" | "name" => "write a quoted name, e.g. \"eth0\"",
        "input" => "e.g. input: { interface: \"eth0\", group: \"239.1.1.1\", port: 5001 }",
        "outputs" => "e.g. outputs: [ { interface: \"eth1\", group: \"239.1.1.1\", port: 5001 } ]",
        "version" => "use 2 or 3",
        "cores" | "cores[]" => "cores is a list of CPU numbers, e.g. cores: [0, 1]",
        "event_buffer_size" => "use an integer from 16 to 1048576 (default 256)",
        "enabled" | "external_neighbors_enabled" | "default_peer" => "use true or false",
        "multicast_ttl" => "multicast_ttl is an integer from 1 to 255, e.g. multicast_ttl: 4",
        "pinning" => "pinning maps interface names to CPU lists, e.g. pinning: { \"eth0\": [0] }",
        "pinning[]" => "pinning lists CPU numbers, e.g. \"eth0\": [0, 1]",
        "querier_interfaces" => {
            "write a list of interface names, e.g. querier_interfaces: [\"eth1\"]"
        }
        "proxy" => "e.g. proxy: { upstream: \"eth0\", downstream: [\"eth1\", \"eth2\"] }",
        "upstream" => "write a quoted interface name, e.g. upstream: \"eth0\"",
        "downstream" => "write a list of interface names, e.g. downstream: [\"eth1\"]",
        "query_interval" => "use a number of seconds from 1 to 31744 (default 125)",
        "query_response_interval" => "use a number of seconds, e.g. 10 (the default)",
        "robustness" => "use an integer from 1 to 7 (default 2)",
        "hello_period" => "use a number of seconds from 1 to 18724 (default 30)",
        "dr_priority" => "dr_priority is an integer from 0 to 4294967295 (default 1)",
        "keepalive_interval" => "use a number of seconds, e.g. 60 (the default)",
        "hold_time" => "use a number of seconds, e.g. 75 (the default)",
        "rpf_provider" => "use \"disabled\", \"kernel\", \"static\" or an absolute socket path",
        "static_rp" => "e.g. static_rp: [ { group: \"239.0.0.0/8\", rp: \"10.0.0.1\" } ]",
        _ => return None,
    })
}
