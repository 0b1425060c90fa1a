//! The listening socket and its clients, served from the supervisor's poll
//! loop: nothing here blocks, so a slow, silent or hostile client delays no
//! one.

use super::connection::{Connection, Incoming};
use super::protocol::{self, ErrorCode, Request, Response};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Clients served at once; more are told so and closed.
pub const MAX_CLIENTS: usize = 512;
/// A client that started a line must finish it within this.
pub const PARTIAL_LINE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "another mcrd is already serving {0}; give this instance its own --control-socket-path"
    )]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or choose another --control-socket-path")]
    NotASocket(PathBuf),
    #[error("cannot create the control socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
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
    /// Directories bind created, deepest first.
    created_dirs: Vec<PathBuf>,
    path: PathBuf,
    listener: UnixListener,
    clients: BTreeMap<u64, Connection>,
    next_client: u64,
}

impl ControlServer {
    /// Binds `path` (mode 0660, group `group` when given), replacing a stale
    /// socket file but never one a live mcrd answers on.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<ControlServer, BindError> {
        let io_err = |source| BindError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Directories created here are removed again on exit, when empty
        // (e.g. /run/mcr/netns/NAME for the guide's socket path).
        let mut created_dirs = Vec::new();
        if let Some(dir) = path.parent() {
            let mut missing = Vec::new();
            let mut d = Some(dir);
            while let Some(p) = d.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
                missing.push(p.to_path_buf());
                d = p.parent();
            }
            if !missing.is_empty() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
            created_dirs = missing;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(BindError::NotASocket(path.to_path_buf()));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            tracing::info!(path = %path.display(), "replacing stale control socket");
            std::fs::remove_file(path).map_err(io_err)?;
        }
        let gid = match group {
            Some(g) => Some(
                nix::unistd::Group::from_name(g)
                    .ok()
                    .flatten()
                    .ok_or_else(|| BindError::NoSuchGroup(g.to_string()))?
                    .gid,
            ),
            None => None,
        };
        let listener = UnixListener::bind(path).map_err(io_err)?;
        listener.set_nonblocking(true).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err)?;
        if let Some(gid) = gid {
            nix::unistd::chown(path, None, Some(gid)).map_err(|e| io_err(e.into()))?;
        }
        Ok(ControlServer {
            created_dirs,
            path: path.to_path_buf(),
            listener,
            clients: BTreeMap::new(),
            next_client: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fds to poll: the listener, then every client.
    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        out.push(libc::pollfd {
            fd: self.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
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

    /// Accepts new clients, reads every client and returns the requests
    /// that arrived, in order per client. Closes clients that hung up,
    /// timed out or fell too far behind.
    pub fn poll(&mut self) -> Vec<Pending> {
        self.accept();
        let now = Instant::now();
        let mut pending = Vec::new();
        let mut close = Vec::new();
        for (&id, c) in self.clients.iter_mut() {
            for incoming in c.read_lines() {
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
                pending.push(Pending {
                    client: id,
                    id: req_id,
                    request,
                });
            }
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
            self.clients.remove(&id);
        }
        pending
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
            if failed || (c.closed && !c.wants_write()) {
                dead.push(id);
            }
        }
        for id in dead {
            self.clients.remove(&id);
        }
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
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
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
                    tracing::warn!(error = %e, "accepting a control client failed");
                    return;
                }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        // remove_dir only removes empty directories: others' files stay.
        for dir in &self.created_dirs {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slow_subscriber_misses_events_instead_of_growing() {
        let path = std::env::temp_dir().join(format!("mcr-srv-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut server = ControlServer::bind(&path, None).unwrap();
        let _client = UnixStream::connect(&path).unwrap();
        assert!(server.poll().is_empty());
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
}
