//! A small, bounded HTTP/1.x server for `GET /metrics`.
//!
//! Why not a general server crate: the endpoint must hold bounded memory
//! and threads whatever scrapers do, and the small blocking servers (e.g.
//! `tiny_http`) start a thread per open connection and set no deadlines.
//! This one is an accept thread and a fixed pool of workers; requests are
//! parsed with `httparse`.
//!
//! Bounds ([`ServerLimits`]): at most `workers` connections are served at
//! once and `queue` more wait, accepted; past that, connections wait in the
//! kernel's listen backlog (bounded by `somaxconn`) until a worker is free.
//! A request head is at most 8 KiB and must arrive within `read_deadline`;
//! the answer must be taken within `write_deadline`, else the connection is
//! closed. So a scraper that connects and never reads or writes holds one
//! worker for at most one deadline, and the memory per connection is the
//! head buffer: every answer shares one rendered body. One request per
//! connection (`Connection: close`).

use super::{render, Format, Snapshot};
use arc_swap::ArcSwapOption;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the threads look at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// How much the server may hold.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections served at once (threads).
    pub workers: usize,
    /// Accepted connections waiting for a worker.
    pub queue: usize,
    /// Time for a client to send its request head.
    pub read_deadline: Duration,
    /// Time for a client to take the whole answer.
    pub write_deadline: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            workers: 4,
            queue: 64,
            read_deadline: Duration::from_secs(5),
            write_deadline: Duration::from_secs(10),
        }
    }
}

/// A body rendered in one format for one snapshot.
type Rendered = (Format, Arc<Snapshot>, Arc<Vec<u8>>);

#[derive(Default)]
struct Shared {
    snapshot: ArcSwapOption<Snapshot>,
    /// The body rendered for a snapshot (rendered once, by the first worker
    /// that needs it; the others wait for it rather than render again).
    rendered: Mutex<Vec<Rendered>>,
    stop: AtomicBool,
}

impl Shared {
    fn body(&self, format: Format) -> Option<Arc<Vec<u8>>> {
        let snap = self.snapshot.load_full()?;
        let mut cache = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(_, s, _)| Arc::ptr_eq(s, &snap));
        if let Some((_, _, body)) = cache.iter().find(|(f, _, _)| *f == format) {
            return Some(Arc::clone(body));
        }
        let body = Arc::new(render(&snap, format).into_bytes());
        cache.push((format, snap, Arc::clone(&body)));
        Some(body)
    }
}

/// The running endpoint; stops (and closes its socket) on drop.
pub struct MetricsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetricsServer({})", self.addr)
    }
}

impl MetricsServer {
    /// Binds `addr` (in the caller's thread, so a bind error is the
    /// caller's to report) and starts serving.
    pub fn start(addr: SocketAddr, limits: ServerLimits) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = bounded::<TcpStream>(limits.queue.max(1));
        for n in 0..limits.workers.max(1) {
            let shared = Arc::clone(&shared);
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("mcr-metrics-{n}"))
                .spawn(move || worker(&shared, &rx, limits))?;
        }
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("mcr-metrics".into())
                .spawn(move || accept_loop(&listener, &shared, &tx))?
        };
        Ok(MetricsServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address served (with the actual port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces what scrapes show. Cheap: the text is rendered by the
    /// server's threads when a scraper asks.
    pub fn publish(&self, snapshot: Snapshot) {
        self.shared.snapshot.store(Some(Arc::new(snapshot)));
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // The acceptor owns the socket: once it returned the address is
        // free (for a rebind at reload). Workers finish their connection
        // (within its deadlines) and exit by themselves.
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Shared, tx: &Sender<TcpStream>) {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    while !shared.stop.load(Ordering::Relaxed) {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
        if n <= 0 {
            continue;
        }
        loop {
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::debug!(error = %e, "metrics: accept failed");
                    std::thread::sleep(TICK);
                    break;
                }
            };
            if stream.set_nonblocking(false).is_err() {
                continue;
            }
            // Full queue: wait (new connections wait in the backlog).
            loop {
                match tx.send_timeout(stream, TICK) {
                    Ok(()) => break,
                    Err(SendTimeoutError::Timeout(s)) => {
                        if shared.stop.load(Ordering::Relaxed) {
                            return;
                        }
                        stream = s;
                    }
                    Err(SendTimeoutError::Disconnected(_)) => return,
                }
            }
        }
    }
}

fn worker(shared: &Shared, rx: &Receiver<TcpStream>, limits: ServerLimits) {
    loop {
        match rx.recv_timeout(TICK) {
            Ok(stream) => {
                if let Err(e) = serve(shared, stream, limits) {
                    tracing::debug!(error = %e, "metrics: connection closed");
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Time left until `deadline`, or a timed-out error.
fn left(deadline: Instant) -> std::io::Result<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(std::io::ErrorKind::TimedOut.into())
    } else {
        Ok(d)
    }
}

/// What a request head asks for.
enum Ask {
    Metrics { head_only: bool, format: Format },
    Index { head_only: bool },
    NotFound,
    BadMethod,
    Bad,
}

fn read_request(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<Ask> {
    let mut buf = [0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let head_only = req.method == Some("HEAD");
                if req.method != Some("GET") && !head_only {
                    return Ok(Ask::BadMethod);
                }
                let path = req.path.unwrap_or("");
                let path = path.split('?').next().unwrap_or("");
                let accept = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("accept"))
                    .and_then(|h| std::str::from_utf8(h.value).ok());
                return Ok(match path {
                    "/metrics" => Ask::Metrics {
                        head_only,
                        format: Format::from_accept(accept),
                    },
                    "/" => Ask::Index { head_only },
                    _ => Ask::NotFound,
                });
            }
            Ok(httparse::Status::Partial) if len < buf.len() => {}
            Ok(httparse::Status::Partial) | Err(_) => return Ok(Ask::Bad),
        }
    }
}

fn serve(shared: &Shared, mut stream: TcpStream, limits: ServerLimits) -> std::io::Result<()> {
    let ask = read_request(&mut stream, Instant::now() + limits.read_deadline)?;
    let index = b"mcrd: metrics at /metrics\n";
    let (status, ctype, body, head_only): (&str, &str, Arc<Vec<u8>>, bool) = match ask {
        Ask::Metrics { head_only, format } => match shared.body(format) {
            Some(b) => ("200 OK", format.content_type(), b, head_only),
            None => (
                "503 Service Unavailable",
                "text/plain",
                Arc::new(b"no data yet\n".to_vec()),
                head_only,
            ),
        },
        Ask::Index { head_only } => ("200 OK", "text/plain", Arc::new(index.to_vec()), head_only),
        Ask::NotFound => (
            "404 Not Found",
            "text/plain",
            Arc::new(b"not found: try /metrics\n".to_vec()),
            false,
        ),
        Ask::BadMethod => (
            "405 Method Not Allowed",
            "text/plain",
            Arc::new(b"GET or HEAD only\n".to_vec()),
            false,
        ),
        Ask::Bad => (
            "400 Bad Request",
            "text/plain",
            Arc::new(b"bad request\n".to_vec()),
            false,
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let deadline = Instant::now() + limits.write_deadline;
    write_within(&mut stream, head.as_bytes(), deadline)?;
    if !head_only {
        write_within(&mut stream, &body, deadline)?;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Writes all of `data` before `deadline` or fails.
fn write_within(stream: &mut TcpStream, mut data: &[u8], deadline: Instant) -> std::io::Result<()> {
    while !data.is_empty() {
        stream.set_write_timeout(Some(left(deadline)?))?;
        match stream.write(&data[..data.len().min(64 * 1024)]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
