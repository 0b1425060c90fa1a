//! An external RPF provider on a Unix stream socket, speaking JSON lines
//! (`docs/rpf-provider.md`): mcrd asks `{"query":"rpf","source":"S"}`, the
//! provider answers in order `{"upstream_interface":..,
//! "upstream_neighbor":..,"metric":..}` (the seed system's shapes) and may
//! push `{"push":"rpf","prefix":"P",...}` at any time.
//!
//! Never blocks the control thread: the socket is non-blocking and polled
//! by the supervisor; writes are buffered. Answers are cached (lifetime
//! from the answer's `ttl`, else [`DEFAULT_CACHE_LIFETIME`]). When the
//! provider goes away, mcrd reconnects with exponential backoff
//! ([`MIN_BACKOFF`] doubling to [`MAX_BACKOFF`]); the cache is kept and
//! answers from it meanwhile, and `status` shows the provider `down`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mcr_protocols::{Ipv4Prefix, RpfChange, RpfRoute};
use serde_json::Value;

use super::{
    interface_by_name, Lookup, RpfNotice, RpfProvider, RpfProviderStatus, EXTERNAL_PREFERENCE,
};

/// Lifetime of a cached answer without `ttl`.
pub const DEFAULT_CACHE_LIFETIME: Duration = Duration::from_secs(30);
/// Longest `ttl` accepted from a provider.
pub const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(86_400);
/// How long a query may wait for its answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// First reconnect delay.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Bound of the answer cache, sources.
pub const MAX_CACHE: usize = 65_536;
/// Bound of the queries waiting for an answer.
pub const MAX_PENDING: usize = 1024;
/// Longest line accepted from the provider, bytes (longer: disconnect).
pub const MAX_LINE: usize = 65_536;
/// Bound of the unsent output, bytes.
pub const MAX_OUTPUT: usize = 1 << 20;

#[derive(Debug, Clone)]
struct Cached {
    route: Option<RpfRoute>,
    expires: Instant,
}

/// The connection to an external provider.
#[derive(Debug)]
pub struct ExternalRpf {
    path: PathBuf,
    stream: Option<UnixStream>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    pending: VecDeque<(Ipv4Addr, Instant)>,
    cache: BTreeMap<Ipv4Addr, Cached>,
    retry_at: Option<Instant>,
    backoff: Duration,
    connects: u64,
    error: Option<String>,
    notices: Vec<RpfNotice>,
}

/// Reads an answer or push body into a route; `Err` for a malformed one.
fn route_of(v: &Value) -> Result<Option<RpfRoute>, String> {
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return if e.is_empty() {
            Ok(None)
        } else {
            Err(e.to_string())
        };
    }
    let iface = match v.get("upstream_interface") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 15 => s,
        Some(other) => return Err(format!("bad upstream_interface {other}")),
    };
    let neighbor = match v.get("upstream_neighbor") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            s.parse::<Ipv4Addr>()
                .map_err(|_| format!("bad upstream_neighbor '{s}'"))?,
        ),
        Some(other) => return Err(format!("bad upstream_neighbor {other}")),
    };
    let metric = match v.get("metric") {
        None | Some(Value::Null) => 0,
        Some(m) => m
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| format!("bad metric {m}"))?,
    };
    Ok(Some(RpfRoute {
        interface: interface_by_name(iface),
        neighbor,
        metric,
        preference: EXTERNAL_PREFERENCE,
    }))
}

/// Reads `"10.1.0.0/16"` (or a bare address, /32).
pub fn parse_prefix(s: &str) -> Option<Ipv4Prefix> {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    Ipv4Prefix::new(a.parse().ok()?, l.parse().ok()?).ok()
}

impl ExternalRpf {
    /// A provider at `path`; the first connection attempt is made on the
    /// first [`poll`](RpfProvider::poll).
    pub fn new(path: PathBuf) -> ExternalRpf {
        ExternalRpf {
            path,
            stream: None,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            pending: VecDeque::new(),
            cache: BTreeMap::new(),
            retry_at: Some(Instant::now()),
            backoff: MIN_BACKOFF,
            connects: 0,
            error: Some("not connected yet".into()),
            notices: Vec::new(),
        }
    }

    /// Whether the connection is up.
    pub fn is_up(&self) -> bool {
        self.stream.is_some()
    }

    fn disconnect(&mut self, now: Instant, why: String) {
        if self.stream.take().is_some() {
            tracing::warn!(provider = %self.path.display(), "RPF provider down: {why}; reconnecting");
            self.notices.push(RpfNotice::State(format!("down: {why}")));
        }
        self.error = Some(why.clone());
        self.rbuf.clear();
        self.wbuf.clear();
        for (source, _) in self.pending.drain(..) {
            self.notices.push(RpfNotice::Answered {
                source,
                result: Err(format!("RPF provider disconnected: {why}")),
            });
        }
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Connects without ever blocking: the socket is non-blocking before
    /// `connect`, so a provider whose listen backlog is full gives
    /// `EAGAIN` (retried with backoff) instead of stalling the control
    /// thread.
    fn open_stream(&self) -> io::Result<UnixStream> {
        use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let addr = UnixAddr::new(&self.path)?;
        connect(fd.as_raw_fd(), &addr)?;
        Ok(UnixStream::from(fd))
    }

    fn connect(&mut self, now: Instant) {
        match self.open_stream() {
            Ok(s) => {
                tracing::info!(provider = %self.path.display(), "RPF provider connected");
                self.stream = Some(s);
                self.connects += 1;
                self.error = None;
                self.retry_at = None;
                self.backoff = MIN_BACKOFF;
                self.notices.push(RpfNotice::State("up".into()));
            }
            Err(e) => {
                let why = format!("cannot connect to {}: {e}", self.path.display());
                if self.connects == 0 && self.backoff == MIN_BACKOFF {
                    // Once: later attempts are visible in `status`.
                    tracing::warn!("RPF provider not reachable yet ({why}); retrying with backoff up to {MAX_BACKOFF:?}");
                }
                self.error = Some(why);
                self.retry_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    fn cache_put(
        &mut self,
        now: Instant,
        source: Ipv4Addr,
        route: Option<RpfRoute>,
        life: Duration,
    ) {
        if self.cache.len() >= MAX_CACHE && !self.cache.contains_key(&source) {
            self.cache.retain(|_, c| c.expires > now);
            if self.cache.len() >= MAX_CACHE {
                return;
            }
        }
        self.cache.insert(
            source,
            Cached {
                route,
                expires: now + life,
            },
        );
    }

    fn line(&mut self, now: Instant, line: &[u8]) {
        let v: Value = match serde_json::from_slice(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                tracing::warn!(provider = %self.path.display(), "RPF provider sent a line that is not a JSON object; ignored");
                return;
            }
        };
        let life = v
            .get("ttl")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(|t| Duration::from_secs_f64(t).min(MAX_CACHE_LIFETIME))
            .unwrap_or(DEFAULT_CACHE_LIFETIME);
        if v.get("push").is_some() {
            let Some(prefix) = v
                .get("prefix")
                .and_then(Value::as_str)
                .and_then(parse_prefix)
            else {
                tracing::warn!(provider = %self.path.display(), "RPF push without a valid prefix; ignored");
                return;
            };
            match route_of(&v) {
                Ok(route) => {
                    let inside: Vec<Ipv4Addr> = self
                        .cache
                        .keys()
                        .copied()
                        .filter(|s| prefix.contains(*s))
                        .collect();
                    for s in inside {
                        self.cache_put(now, s, route.clone(), life);
                    }
                    self.notices
                        .push(RpfNotice::Change(RpfChange { prefix, route }));
                }
                Err(e) => tracing::warn!(provider = %self.path.display(), "RPF push ignored: {e}"),
            }
            return;
        }
        // An answer: to the oldest query (or the one it names).
        let named = v
            .get("source")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok());
        let pos = match named {
            Some(s) => self.pending.iter().position(|(p, _)| *p == s),
            None => (!self.pending.is_empty()).then_some(0),
        };
        let Some(pos) = pos else {
            tracing::warn!(provider = %self.path.display(), "RPF answer with no query waiting; ignored");
            return;
        };
        let Some((source, _)) = self.pending.remove(pos) else {
            return;
        };
        let result = route_of(&v);
        if let Ok(route) = &result {
            self.cache_put(now, source, route.clone(), life);
        }
        self.notices.push(RpfNotice::Answered { source, result });
    }

    fn read(&mut self, now: Instant) {
        let mut buf = [0u8; 8192];
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            match stream.read(&mut buf) {
                Ok(0) => return self.disconnect(now, "the provider closed the connection".into()),
                Ok(n) => {
                    self.rbuf.extend_from_slice(&buf[..n]);
                    while let Some(nl) = self.rbuf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = self.rbuf.drain(..=nl).collect();
                        let line = line.trim_ascii();
                        if !line.is_empty() {
                            self.line(now, line);
                        }
                    }
                    if self.rbuf.len() > MAX_LINE {
                        return self
                            .disconnect(now, format!("a line longer than {MAX_LINE} bytes"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.disconnect(now, e.to_string()),
            }
        }
    }

    fn flush(&mut self, now: Instant) {
        while !self.wbuf.is_empty() {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            match stream.write(&self.wbuf) {
                Ok(0) => return self.disconnect(now, "write returned 0".into()),
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.disconnect(now, e.to_string()),
            }
        }
    }
}

impl RpfProvider for ExternalRpf {
    fn kind(&self) -> &'static str {
        "external"
    }

    fn lookup(&mut self, now: Instant, source: Ipv4Addr) -> Lookup {
        if let Some(c) = self.cache.get(&source) {
            // Fresh, or stale while the provider is down (state kept).
            if c.expires > now || self.stream.is_none() {
                return Lookup::Answer(c.route.clone());
            }
        }
        if self.stream.is_none() {
            return Lookup::Unavailable(format!(
                "RPF provider {} is down: {}",
                self.path.display(),
                self.error.as_deref().unwrap_or("not connected")
            ));
        }
        if self.pending.len() >= MAX_PENDING || self.wbuf.len() >= MAX_OUTPUT {
            return Lookup::Unavailable(format!(
                "RPF provider {} has {} queries unanswered",
                self.path.display(),
                self.pending.len()
            ));
        }
        let line = serde_json::json!({"query": "rpf", "source": source.to_string()});
        self.wbuf.extend_from_slice(line.to_string().as_bytes());
        self.wbuf.push(b'\n');
        self.pending.push_back((source, now));
        // A failed write disconnects, which answers the query with an
        // error at the next poll.
        self.flush(now);
        Lookup::Pending
    }

    fn poll_fd(&self) -> Option<(RawFd, i16)> {
        let s = self.stream.as_ref()?;
        let mut ev = libc::POLLIN;
        if !self.wbuf.is_empty() {
            ev |= libc::POLLOUT;
        }
        Some((s.as_raw_fd(), ev))
    }

    fn poll(&mut self, now: Instant) -> Vec<RpfNotice> {
        if self.stream.is_none() && self.retry_at.is_some_and(|t| t <= now) {
            self.connect(now);
        }
        if self.stream.is_some() {
            self.read(now);
            self.flush(now);
        }
        while let Some((source, asked)) = self.pending.front().copied() {
            if now.duration_since(asked) < QUERY_TIMEOUT {
                break;
            }
            self.pending.pop_front();
            self.notices.push(RpfNotice::Answered {
                source,
                result: Err(format!(
                    "RPF provider {} did not answer within {QUERY_TIMEOUT:?}",
                    self.path.display()
                )),
            });
        }
        std::mem::take(&mut self.notices)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let timeout = self.pending.front().map(|(_, t)| *t + QUERY_TIMEOUT);
        let notices = (!self.notices.is_empty()).then(Instant::now);
        [self.retry_at, timeout, notices]
            .into_iter()
            .flatten()
            .min()
    }

    fn status(&self) -> RpfProviderStatus {
        RpfProviderStatus {
            kind: "external".into(),
            socket: Some(self.path.display().to_string()),
            state: if self.stream.is_some() { "up" } else { "down" }.into(),
            error: self.error.clone(),
            connects: self.connects,
            cached: self.cache.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;

    fn poll_until(p: &mut ExternalRpf, mut f: impl FnMut(&RpfNotice) -> bool) -> Vec<RpfNotice> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut all = Vec::new();
        while Instant::now() < deadline {
            let n = p.poll(Instant::now());
            let done = n.iter().any(&mut f);
            all.extend(n);
            if done {
                return all;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("condition not met; notices: {all:?}");
    }

    #[test]
    fn answers_pushes_cache_and_reconnect() {
        let dir = std::env::temp_dir().join(format!("mcr-rpf-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("p.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let mut p = ExternalRpf::new(path.clone());
        poll_until(&mut p, |n| matches!(n, RpfNotice::State(s) if s == "up"));
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut w = conn;
        let src: Ipv4Addr = "10.1.0.5".parse().unwrap();
        assert_eq!(p.lookup(Instant::now(), src), Lookup::Pending);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap(),
            serde_json::json!({"query":"rpf","source":"10.1.0.5"})
        );
        w.write_all(
            b"{\"upstream_interface\":\"lo\",\"upstream_neighbor\":\"10.2.0.1\",\"metric\":100}\n",
        )
        .unwrap();
        let n = poll_until(&mut p, |n| matches!(n, RpfNotice::Answered { .. }));
        let Some(RpfNotice::Answered {
            result: Ok(Some(r)),
            ..
        }) = n.iter().find(|n| matches!(n, RpfNotice::Answered { .. }))
        else {
            panic!("{n:?}")
        };
        assert_eq!(r.metric, 100);
        assert_eq!(r.neighbor, Some("10.2.0.1".parse().unwrap()));
        // Cached now.
        assert!(matches!(
            p.lookup(Instant::now(), src),
            Lookup::Answer(Some(_))
        ));
        // A push for the prefix.
        w.write_all(b"{\"push\":\"rpf\",\"prefix\":\"10.1.0.0/16\",\"upstream_interface\":\"lo\",\"metric\":7}\n")
            .unwrap();
        poll_until(
            &mut p,
            |n| matches!(n, RpfNotice::Change(c) if c.route.as_ref().map(|r| r.metric) == Some(7)),
        );
        let Lookup::Answer(Some(r)) = p.lookup(Instant::now(), src) else {
            panic!()
        };
        assert_eq!(r.metric, 7);
        // The provider goes away: down, cache kept, reconnects.
        drop(w);
        drop(reader);
        poll_until(
            &mut p,
            |n| matches!(n, RpfNotice::State(s) if s.starts_with("down")),
        );
        assert_eq!(p.status().state, "down");
        assert!(matches!(
            p.lookup(Instant::now(), src),
            Lookup::Answer(Some(_))
        ));
        let _c2 = {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                p.poll(Instant::now());
                listener.set_nonblocking(true).unwrap();
                if let Ok((c, _)) = listener.accept() {
                    break c;
                }
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        p.poll(Instant::now());
        assert_eq!(p.status().state, "up");
        assert_eq!(p.status().connects, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        for v in [
            serde_json::json!({"upstream_interface": 5}),
            serde_json::json!({"upstream_interface": "a", "upstream_neighbor": "x"}),
            serde_json::json!({"upstream_interface": "a", "metric": -1}),
            serde_json::json!({"error": "no route"}),
        ] {
            assert!(route_of(&v).is_err(), "{v}");
        }
        assert_eq!(
            route_of(&serde_json::json!({"upstream_interface": null})),
            Ok(None)
        );
    }
}
