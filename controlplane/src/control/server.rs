//! The listening socket and its clients, served from the supervisor's poll
//! loop: nothing here blocks, so a slow, silent or hostile client delays no
//! one.

use super::connection::{Connection, Incoming};
use super::protocol::{self, ErrorCode, Request, Response};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Clients served at once; more are told so and closed.
pub const MAX_CLIENTS: usize = 512;
/// A client that started a line must finish it within this.
pub const PARTIAL_LINE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Memory all clients together may hold in unfinished request lines. Each
/// client is bounded by one line ([`MAX_LINE`](super::connection::MAX_LINE)),
/// but 512 of them would pin 512 MiB: past this budget the client holding
/// the most is told so and closed, until the total fits again.
pub const PARTIAL_INPUT_BUDGET: usize = 32 << 20;
/// A client with this much unread output gets no more requests executed
/// until it reads: work whose answers nobody takes is not done.
pub const OUTPUT_HIGH_WATER: usize = 256 << 10;
/// How long accepting pauses when the process is out of descriptors (the
/// listener stays readable, so polling it would spin).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "another mcrd is already serving {0}; give this instance its own --control-socket-path"
    )]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or choose another --control-socket-path")]
    NotASocket(PathBuf),
    // `error`, not `source`: the message already shows it, and a source
    // would be printed a second time by `{:#}`.
    #[error("cannot create the control socket {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("control socket path {0} is {1} bytes long; a Unix socket path must be shorter than 108 bytes (choose a shorter --control-socket-path)")]
    TooLong(PathBuf, usize),
    #[error("control socket group '{0}' does not exist")]
    NoSuchGroup(String),
}

/// One parsed request from a client, for the supervisor to execute.
pub struct Pending {
    pub client: u64,
    pub id: Option<Value>,
    pub request: Result<Request, Response>,
}

pub struct ControlServer {
    /// The socket file, removed on drop.
    file: super::socket_file::SocketFile,
    path: PathBuf,
    listener: UnixListener,
    clients: BTreeMap<u64, Connection>,
    next_client: u64,
    /// The client served last: [`ControlServer::next_request`] goes on
    /// after it, so clients take turns one request each.
    cursor: u64,
    /// Accepting is paused until then (out of descriptors).
    accept_paused_until: Option<Instant>,
    /// Connections we could not accept in the current out-of-descriptors
    /// episode (logged once when it starts and once when it ends).
    accept_failures: u64,
    /// See [`PARTIAL_INPUT_BUDGET`] (a field so tests can shrink it).
    partial_budget: usize,
    /// Clients closed for holding too much of the partial-line budget.
    pub budget_closed: u64,
    /// Clients whose queued requests were dropped because they hung up.
    pub hung_up_dropped: u64,
    /// The socket file was removed by [`release`](Self::release): never
    /// remove the path again, a new mcrd may own it by now.
    released: bool,
}

impl ControlServer {
    /// Binds `path` (mode 0660, owned by the user mcrd runs as now and
    /// group `group` when given), replacing a stale socket file but never
    /// one a live mcrd answers on. See [`super::socket_file`] for how the
    /// file is put in place.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<ControlServer, BindError> {
        let gid = match group {
            Some(g) => Some(
                nix::unistd::Group::from_name(g)
                    .ok()
                    .flatten()
                    .ok_or_else(|| BindError::NoSuchGroup(g.to_string()))?
                    .gid
                    .as_raw(),
            ),
            None => None,
        };
        let (listener, file) = super::socket_file::bind(path, gid)?;
        Ok(ControlServer {
            file,
            path: path.to_path_buf(),
            listener,
            clients: BTreeMap::new(),
            next_client: 0,
            cursor: 0,
            accept_paused_until: None,
            accept_failures: 0,
            partial_budget: PARTIAL_INPUT_BUDGET,
            budget_closed: 0,
            hung_up_dropped: 0,
            released: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fds to poll: the listener (unless accepting is paused), then
    /// every client.
    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        if self.accept_paused_until.is_none() {
            out.push(libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for c in self.clients.values() {
            // A client that hung up is always "readable" (EOF): polling it
            // for input would make poll return at once, forever.
            let mut events = if c.closed { 0 } else { libc::POLLIN };
            if c.wants_write() {
                events |= libc::POLLOUT;
            }
            out.push(libc::pollfd {
                fd: c.stream().as_raw_fd(),
                events,
                revents: 0,
            });
        }
    }

    /// How long the poll loop may sleep: not at all when requests are
    /// buffered, at most until accepting resumes.
    pub fn poll_timeout(&mut self, max: Duration) -> Duration {
        let now = Instant::now();
        let mut t = max;
        if let Some(until) = self.accept_paused_until {
            t = t.min(until.saturating_duration_since(now));
        }
        if self
            .clients
            .values_mut()
            .any(|c| c.pending_output() <= OUTPUT_HIGH_WATER && c.has_request())
        {
            t = Duration::ZERO;
        }
        t
    }

    /// Accepts new clients, reads what every client sent (one chunk each at
    /// most, see [`Connection::fill`]) and closes clients that timed out or
    /// hold too much of the partial-line budget. Requests are then taken one
    /// at a time with [`next_request`](Self::next_request).
    pub fn poll(&mut self) {
        self.accept();
        let now = Instant::now();
        let mut close = Vec::new();
        let mut input_total = 0usize;
        for (&id, c) in self.clients.iter_mut() {
            c.fill();
            input_total += c.input_bytes();
            let idle = now.duration_since(c.last_activity);
            let timed_out = (c.has_partial_line() && idle > PARTIAL_LINE_TIMEOUT)
                || idle > IDLE_TIMEOUT
                // Hung up with answers it does not read.
                || (c.closed && c.wants_write() && idle > PARTIAL_LINE_TIMEOUT);
            if timed_out {
                let _ = c.queue(
                    &Response::error(ErrorCode::Timeout, "closing idle connection").to_line(None),
                );
                let _ = c.flush();
                close.push(id);
            }
            // A client that hung up is closed by `flush_all`, after the
            // answers to what it sent before hanging up.
        }
        for id in close {
            if let Some(c) = self.clients.remove(&id) {
                input_total -= c.input_bytes();
            }
        }
        self.enforce_partial_budget(input_total);
    }

    /// Closes the clients holding the most input memory until all of them
    /// together hold at most the budget.
    fn enforce_partial_budget(&mut self, mut total: usize) {
        while total > self.partial_budget {
            let Some((&id, _)) = self.clients.iter().max_by_key(|(_, c)| c.input_bytes()) else {
                return;
            };
            let mut c = self.clients.remove(&id).expect("just found");
            total -= c.input_bytes();
            c.clear_input();
            self.budget_closed += 1;
            tracing::warn!(
                client = id,
                "control clients hold too many unfinished request lines; closing the largest"
            );
            let _ = c.queue(
                &Response::error(
                    ErrorCode::Busy,
                    "too much unfinished request data across control clients; send whole lines",
                )
                .to_line(None),
            );
            let _ = c.flush();
        }
    }

    /// The next request to execute, taking clients in turns (one request
    /// per client per turn), so a client with a deep pipeline delays each
    /// other client by at most one of its requests. Skips clients that
    /// subscribed or do not read their answers; drops the buffered requests
    /// of a client that hung up (nobody would read the answers).
    pub fn next_request(&mut self) -> Option<Pending> {
        let order: Vec<u64> = self
            .clients
            .range(self.cursor + 1..)
            .chain(self.clients.range(..=self.cursor))
            .map(|(&id, _)| id)
            .collect();
        for id in order {
            let c = self.clients.get_mut(&id).expect("listed");
            if c.pending_output() > OUTPUT_HIGH_WATER {
                continue;
            }
            let Some(incoming) = c.next_line() else {
                continue;
            };
            if c.hung_up() {
                self.hung_up_dropped += 1;
                tracing::debug!(
                    client = id,
                    "control client hung up; its requests are dropped"
                );
                self.clients.remove(&id);
                continue;
            }
            self.cursor = id;
            let (req_id, request) = match incoming {
                Incoming::Line(line) => protocol::parse(&line),
                Incoming::TooLong => (
                    None,
                    Err(Response::error(
                        ErrorCode::RequestTooLarge,
                        "request line over 1 MiB; it was discarded",
                    )),
                ),
                Incoming::NotUtf8 => (
                    None,
                    Err(Response::error(
                        ErrorCode::InvalidJson,
                        "request is not UTF-8 text",
                    )),
                ),
            };
            return Some(Pending {
                client: id,
                id: req_id,
                request,
            });
        }
        None
    }

    /// Queues an answer for a client (dropped if the client has gone).
    pub fn respond(&mut self, client: u64, id: Option<&Value>, response: &Response) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        if !c.queue(&response.to_line(id)) {
            tracing::warn!(client, "control client not reading its answers; closing it");
            self.clients.remove(&client);
            return;
        }
        if c.flush().is_err() {
            self.clients.remove(&client);
        }
    }

    /// Turns a client's connection into an event stream for `events`.
    pub fn subscribe(&mut self, client: u64, events: Vec<String>) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.subscription = Some(events);
        }
    }

    pub fn is_subscribed(&self, client: u64) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|c| c.subscription.is_some())
    }

    /// Sends an event line to every subscriber of `category`. A subscriber
    /// with more than `backlog` events' worth of unread output misses it
    /// (counted, and reported in its next delivered event), so a slow
    /// subscriber never holds memory or delays anyone.
    pub fn publish(&mut self, category: &str, event: &Value, backlog: usize) {
        let line = event.to_string();
        let limit = backlog.saturating_mul(line.len().max(64));
        for c in self.clients.values_mut() {
            let Some(cats) = &c.subscription else {
                continue;
            };
            if !cats.iter().any(|x| x == category) {
                continue;
            }
            if c.pending_output() > limit {
                c.events_dropped += 1;
                continue;
            }
            let line = if c.events_dropped > 0 {
                let mut e = event.clone();
                e["dropped_before"] = Value::from(c.events_dropped);
                c.events_dropped = 0;
                e.to_string()
            } else {
                line.clone()
            };
            if !c.queue(&line) {
                c.events_dropped += 1;
            }
        }
    }

    /// Events missed by slow subscribers, over all subscribers now connected.
    pub fn events_dropped(&self) -> u64 {
        self.clients.values().map(|c| c.events_dropped).sum()
    }

    /// Writes queued output to clients whose sockets have room.
    pub fn flush_all(&mut self) {
        let mut dead = Vec::new();
        for (&id, c) in self.clients.iter_mut() {
            let failed = c.wants_write() && c.flush().is_err();
            // A half-closed client still gets answers to all it sent.
            if failed || (c.closed && !c.wants_write() && !c.has_request()) {
                dead.push(id);
            }
        }
        for id in dead {
            self.clients.remove(&id);
        }
    }

    /// The process at the other end of a client's connection (pid, uid,
    /// gid from `SO_PEERCRED`), for deciding what it may be told.
    pub fn peer(&self, client: u64) -> Option<nix::sys::socket::UnixCredentials> {
        let c = self.clients.get(&client)?;
        nix::sys::socket::getsockopt(c.stream(), nix::sys::socket::sockopt::PeerCredentials).ok()
    }

    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Clients whose connection streams events.
    pub fn subscriber_count(&self) -> usize {
        self.clients
            .values()
            .filter(|c| c.subscription.is_some())
            .count()
    }

    fn accept(&mut self) {
        if let Some(until) = self.accept_paused_until {
            if Instant::now() < until {
                return;
            }
            self.accept_paused_until = None;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.accept_failures > 0 {
                        tracing::info!(
                            refused = self.accept_failures,
                            "accepting control clients again"
                        );
                        self.accept_failures = 0;
                    }
                    if self.clients.len() >= MAX_CLIENTS {
                        let mut c = match Connection::new(stream) {
                            Ok(c) => c,
                            Err(_) => continue,
                        };
                        let _ = c.queue(
                            &Response::error(
                                ErrorCode::Busy,
                                "too many control clients; try again",
                            )
                            .to_line(None),
                        );
                        let _ = c.flush();
                        continue;
                    }
                    let Ok(mut c) = Connection::new(stream) else {
                        continue;
                    };
                    let _ = c.queue(&protocol::hello_line());
                    let _ = c.flush();
                    self.clients.insert(self.next_client, c);
                    self.next_client += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or memory: the connection stays in
                    // the backlog and the listener stays readable, so
                    // retrying at once would spin. Pause, log once per
                    // episode, and try again later.
                    if self.accept_failures == 0 {
                        tracing::warn!(
                            error = %e,
                            "cannot accept control clients; pausing accepts until descriptors free up"
                        );
                    }
                    self.accept_failures += 1;
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }
}

impl ControlServer {
    /// Gives the socket path up at once (first thing on SIGTERM), so a new
    /// mcrd can bind it while this one is still stopping, and closes every
    /// client.
    pub fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        self.clients.clear();
        // Removes the path only while it is still our socket file.
        self.file.remove();
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if !self.released {
            self.file.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::net::UnixStream;

    #[test]
    fn slow_subscriber_misses_events_instead_of_growing() {
        let path = std::env::temp_dir().join(format!("mcr-srv-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut server = ControlServer::bind(&path, None).unwrap();
        let _client = UnixStream::connect(&path).unwrap();
        server.poll();
        assert!(server.next_request().is_none());
        assert_eq!(server.client_count(), 1);
        let id = *server.clients.keys().next().unwrap();
        server.subscribe(id, vec!["rules".into()]);
        for n in 0..10_000 {
            server.publish("rules", &json!({"event": "rule", "n": n}), 4);
            server.publish("reload", &json!({"event": "reload"}), 4);
        }
        let c = &server.clients[&id];
        assert!(
            c.pending_output() < 4 * 64 + 200,
            "{} bytes queued",
            c.pending_output()
        );
        assert!(
            server.events_dropped() > 9_000,
            "{}",
            server.events_dropped()
        );
        drop(server);
        assert!(!path.exists(), "socket file removed on drop");
    }

    fn bound(tag: &str) -> (ControlServer, PathBuf) {
        let path = std::env::temp_dir().join(format!("mcr-srv-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        (ControlServer::bind(&path, None).unwrap(), path)
    }

    #[test]
    fn clients_take_turns_and_a_hung_up_client_is_dropped() {
        use std::io::Write;
        let (mut server, path) = bound("rr");
        let mut a = UnixStream::connect(&path).unwrap();
        let mut b = UnixStream::connect(&path).unwrap();
        server.poll();
        a.write_all("{\"cmd\":\"ping\",\"id\":\"a\"}\n".repeat(100).as_bytes())
            .unwrap();
        b.write_all(b"{\"cmd\":\"ping\",\"id\":\"b\"}\n").unwrap();
        server.poll();
        let first: Vec<u64> = (0..4)
            .map(|_| server.next_request().unwrap().client)
            .collect();
        // b's one request is among the first two, not after a's hundred.
        assert!(
            first[..2].contains(&0) && first[..2].contains(&1),
            "{first:?}"
        );
        drop(a);
        assert!(server.next_request().is_none(), "a's queue dropped");
        assert_eq!(server.hung_up_dropped, 1);
        assert_eq!(server.client_count(), 1);
    }

    #[test]
    fn partial_lines_share_one_budget() {
        use std::io::Write;
        let (mut server, path) = bound("budget");
        server.partial_budget = 1 << 20;
        let mut clients: Vec<UnixStream> = (0..8)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        server.poll();
        let chunk = vec![b'x'; 200 << 10];
        for c in &mut clients {
            c.set_nonblocking(true).unwrap();
            let _ = c.write(&chunk);
        }
        for _ in 0..20 {
            server.poll();
        }
        let held: usize = server.clients.values().map(|c| c.input_bytes()).sum();
        assert!(held <= 1 << 20, "{held} bytes held");
        assert!(server.budget_closed >= 4, "{}", server.budget_closed);
        assert_eq!(server.client_count() as u64 + server.budget_closed, 8);
    }
}
