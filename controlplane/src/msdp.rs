//! MSDP (RFC 3618) in the control plane: the TCP sessions on port 639 of
//! the [`Msdp`] instance, its timers and the operator's view, all owned by
//! the supervisor thread and polled from its loop.
//!
//! The supervisor calls, in its loop: [`MsdpRuntime::poll_fds`]
//! (descriptors to wait on), [`MsdpRuntime::timeout`] (the next MSDP
//! timer), then [`MsdpRuntime::poll`] (accept, finish connects, read,
//! fire timers, write); after a config change [`MsdpRuntime::sync`]; on
//! exit [`MsdpRuntime::shutdown`]. Every socket is non-blocking: a read or
//! write that would block waits for the next round, and each session's
//! write buffer is bounded ([`WRITE_BUFFER_MAX`]; a TLV that does not fit
//! is dropped and counted in the peer's `send_drops`).
//!
//! Port 639 is privileged: [`MsdpRuntime::bind_listener`] is called before
//! mcrd drops its privileges when MSDP is configured at start. A reload
//! that enables MSDP later tries to bind then and, without
//! `CAP_NET_BIND_SERVICE`, reports the error (log, `mcrctl msdp peers`);
//! the sessions where we are the lower address (we connect, from an
//! ephemeral port) work without it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mcr_protocols::msdp::{
    Config, FilterRule, Msdp, MsdpAction, MsdpEvent, MsdpInput, MsdpTimer, PeerConfig, SaFilter,
    DEFAULT_PEER_SA_LIMIT, MSDP_PORT,
};
use mcr_protocols::{Ipv4Prefix, TimerSet, Timestamp};
use mcr_wire::msdp::{SaEntry, TlvFramer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most bytes queued for one session before TLVs are dropped (a peer that
/// does not read): 256 KiB, about 85 full Source-Active TLVs.
pub const WRITE_BUFFER_MAX: usize = 256 * 1024;
/// Bytes read per session per round before other work gets a turn.
const READ_BUDGET: usize = 256 * 1024;
/// Connections accepted per round.
const ACCEPT_BUDGET: usize = 16;
/// Most SA cache changes kept for [`MsdpRuntime::take_sa_changes`] between
/// two takes (more are dropped and counted).
pub const MAX_SA_CHANGES: usize = 65_536;
/// Bound of the timer set: every SA cache entry's SA-State timer plus three
/// per peer.
const TIMER_CAPACITY: usize = 1 << 21;

/// A change of the SA cache, for the (S,G) joins toward sources in other
/// domains (RFC 3618 section 10.2 with RFC 7761).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SaChange {
    /// A new (S,G) from originating RP `rp`, learned from `peer`.
    Added {
        /// S.
        source: Ipv4Addr,
        /// G.
        group: Ipv4Addr,
        /// Originating RP.
        rp: Ipv4Addr,
        /// The MSDP peer it came from.
        peer: Ipv4Addr,
    },
    /// The entry's SA-State timer ran out (RFC 3618 5.3).
    Expired {
        /// S.
        source: Ipv4Addr,
        /// G.
        group: Ipv4Addr,
        /// Originating RP.
        rp: Ipv4Addr,
    },
}

/// Counters of the socket layer (the protocol's own are in
/// [`mcr_protocols::msdp::Counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketCounters {
    /// Connections accepted on port 639.
    pub accepted: u64,
    /// Accepted connections refused (not a peer, wrong side, a second one).
    pub rejected: u64,
    /// Connects started.
    pub connects: u64,
    /// Connects that failed (refused, unreachable, no route).
    pub connect_failures: u64,
    /// TLVs dropped because a session's write buffer was full.
    pub send_drops: u64,
    /// Timers the bounded timer set refused.
    pub timer_drops: u64,
    /// SA cache changes dropped because nobody took them.
    pub sa_changes_dropped: u64,
}

struct Session {
    stream: TcpStream,
    framer: TlvFramer,
    wbuf: Vec<u8>,
    woff: usize,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    send_drops: u64,
}

impl Session {
    fn new(stream: TcpStream) -> Session {
        Session {
            local: stream.local_addr().ok(),
            remote: stream.peer_addr().ok(),
            stream,
            framer: TlvFramer::new(),
            wbuf: Vec::new(),
            woff: 0,
            send_drops: 0,
        }
    }

    fn pending(&self) -> usize {
        self.wbuf.len() - self.woff
    }

    /// Writes what the socket takes now; Err when the connection failed.
    fn flush(&mut self) -> std::io::Result<()> {
        while self.woff < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.woff..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.woff += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.woff == self.wbuf.len() {
            self.wbuf.clear();
            self.woff = 0;
        } else if self.woff > WRITE_BUFFER_MAX {
            self.wbuf.drain(..self.woff);
            self.woff = 0;
        }
        Ok(())
    }
}

/// The protocol configuration of the `msdp` section, or `None` when MSDP
/// should not run (disabled, or no `local_address`). Filters map rule by
/// rule (first match decides, no match permits); a peer without
/// `sa_limit` gets [`DEFAULT_PEER_SA_LIMIT`].
pub fn protocol_config(c: &mcr_config::MsdpConfig) -> Option<Config> {
    if !c.enabled {
        return None;
    }
    let local_address = c.local_address?;
    let filter = |list: &[mcr_config::SaFilter]| SaFilter {
        rules: list
            .iter()
            .filter_map(|f| {
                let (s, sl) = f.source_prefix()?;
                let (g, gl) = f.group_prefix()?;
                Some(FilterRule {
                    source: Ipv4Prefix::new(s, sl).ok()?,
                    group: Ipv4Prefix::new(g, gl).ok()?,
                    permit: f.action == mcr_config::SaFilterAction::Permit,
                })
            })
            .collect(),
        default_permit: true,
    };
    let peers = c
        .peers
        .iter()
        .map(|p| {
            (
                p.address,
                PeerConfig {
                    description: p.description.clone(),
                    mesh_group: p.mesh_group.clone(),
                    default_peer: p.default_peer,
                    sa_limit: p.sa_limit.map_or(DEFAULT_PEER_SA_LIMIT, |l| l as usize),
                    filter_in: filter(&p.sa_filter_in),
                    filter_out: filter(&p.sa_filter_out),
                    enabled: true,
                },
            )
        })
        .collect();
    Some(Config {
        local_address,
        keepalive_interval: c.keepalive_interval.into(),
        hold_time: c.hold_time.into(),
        sa_cache_limit: c.sa_cache_limit as usize,
        peers,
        ..Config::default()
    })
}

/// MSDP state of the control thread. See the module documentation.
pub struct MsdpRuntime {
    epoch: Instant,
    msdp: Option<Msdp>,
    last: Option<Config>,
    timers: TimerSet<MsdpTimer>,
    listener: Option<TcpListener>,
    listen_error: Option<String>,
    /// [`MSDP_PORT`]; unit tests listen on an ephemeral port instead.
    listen_port: u16,
    listening: BTreeSet<Ipv4Addr>,
    sessions: BTreeMap<Ipv4Addr, Session>,
    connecting: BTreeMap<Ipv4Addr, TcpStream>,
    /// Why the last connect to a peer failed (`connect(2)`'s error, e.g.
    /// no route to it), until a session with it comes up: the state
    /// machine only knows that it failed. One entry per configured peer.
    connect_errors: BTreeMap<Ipv4Addr, String>,
    actions: Vec<MsdpAction>,
    events: Vec<Value>,
    sa_changes: Vec<SaChange>,
    /// Whether anyone takes SA changes (set by the first
    /// [`MsdpRuntime::take_sa_changes`]); until then none are kept.
    sa_changes_wanted: bool,
    local_sources: Vec<SaEntry>,
    counters: SocketCounters,
}

impl Default for MsdpRuntime {
    fn default() -> Self {
        MsdpRuntime::new()
    }
}

/// Starts a non-blocking connect from `local` (port chosen by the kernel:
/// no privilege needed) to `peer:port`.
fn start_connect(local: Ipv4Addr, peer: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    use nix::errno::Errno;
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    if !local.is_unspecified() {
        bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(local, 0)),
        )?;
    }
    match connect(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(peer, port)),
    ) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

/// The peer-RPF lookup of RFC 3618 10.1.3 from the namespace's unicast
/// routes: the next hop toward the originating RP (the RP itself when it
/// is directly connected), as `ip route get RP` gives it. An SA from a
/// peer that is not that next hop (nor the RP, a mesh group member, a
/// default peer or the only peer) is refused and counted in `rpf_fail`.
/// One `RTM_GETROUTE` per SA TLV that needs it, answered by the kernel
/// within the request. `None` (and a warning) when netlink cannot be
/// opened: only the other rules accept SAs then.
fn kernel_peer_rpf() -> Option<mcr_protocols::msdp::PeerRpfFn> {
    match crate::rpf::kernel::KernelRpf::open() {
        Ok(k) => {
            let k = std::cell::RefCell::new(k);
            Some(Box::new(move |rp| {
                let mut k = k.try_borrow_mut().ok()?;
                let route = k.resolve(rp).ok()??;
                Some(route.neighbor.unwrap_or(rp))
            }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "MSDP peer-RPF: cannot open netlink; SAs are accepted only from their RP, mesh group members, default peers or a single peer");
            None
        }
    }
}

fn ip_of(a: SocketAddr) -> Option<Ipv4Addr> {
    match a {
        SocketAddr::V4(v4) => Some(*v4.ip()),
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped(),
    }
}

impl MsdpRuntime {
    /// Nothing running: [`sync`](Self::sync) starts what the config asks.
    pub fn new() -> MsdpRuntime {
        MsdpRuntime {
            epoch: Instant::now(),
            msdp: None,
            last: None,
            timers: TimerSet::with_capacity(TIMER_CAPACITY),
            listener: None,
            listen_error: None,
            listen_port: MSDP_PORT,
            listening: BTreeSet::new(),
            sessions: BTreeMap::new(),
            connecting: BTreeMap::new(),
            connect_errors: BTreeMap::new(),
            actions: Vec::new(),
            events: Vec::new(),
            sa_changes: Vec::new(),
            sa_changes_wanted: false,
            local_sources: Vec::new(),
            counters: SocketCounters::default(),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.epoch.elapsed())
    }

    /// Opens the listening socket on TCP port 639 (all addresses; only
    /// configured peers are kept). Called before privileges drop when MSDP
    /// is configured at start, and by [`sync`](Self::sync) when it is not
    /// open yet. An error is kept for `mcrctl msdp peers` and logged.
    pub fn bind_listener(&mut self) {
        if self.listener.is_some() {
            return;
        }
        let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, self.listen_port);
        match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
            Ok(l) => {
                tracing::info!(listen = %addr, "MSDP listening");
                self.listener = Some(l);
                self.listen_error = None;
            }
            Err(e) => {
                let why = if e.kind() == ErrorKind::PermissionDenied {
                    format!("cannot listen on TCP {addr}: {e}; port 639 is privileged: configure msdp before mcrd starts (it binds before dropping privileges) or grant CAP_NET_BIND_SERVICE (see docs/deployment.md#msdp); peers with a higher address than local_address cannot connect to us until then")
                } else {
                    format!("cannot listen on TCP {addr}: {e}; peers with a higher address than local_address cannot connect to us")
                };
                tracing::error!("{why}");
                self.listen_error = Some(why);
            }
        }
    }

    /// Whether an instance runs.
    pub fn running(&self) -> bool {
        self.msdp.is_some()
    }

    /// The instance (for the operator's views).
    pub fn instance(&self) -> Option<&Msdp> {
        self.msdp.as_ref()
    }

    /// Why the listening socket is not open, if it is not.
    pub fn listen_error(&self) -> Option<&str> {
        self.listen_error.as_deref()
    }

    /// Whether the listening socket is open.
    pub fn listening(&self) -> bool {
        self.listener.is_some()
    }

    /// Socket-layer counters.
    pub fn socket_counters(&self) -> SocketCounters {
        self.counters
    }

    /// The (local, remote) TCP addresses of `peer`'s session, if any.
    pub fn session_addrs(
        &self,
        peer: Ipv4Addr,
    ) -> Option<(Option<SocketAddr>, Option<SocketAddr>)> {
        self.sessions.get(&peer).map(|s| (s.local, s.remote))
    }

    /// TLVs to `peer` dropped because its write buffer was full.
    /// Keeps why a connect to `peer` failed; logged when the reason is new
    /// (a peer that stays unreachable is retried every ConnectRetry period
    /// and would fill the log).
    fn note_connect_error(&mut self, peer: Ipv4Addr, text: String) {
        if self.connect_errors.get(&peer) != Some(&text) {
            tracing::info!(%peer, error = %text, "MSDP connect failed; retrying");
        } else {
            tracing::debug!(%peer, error = %text, "MSDP connect failed");
        }
        self.connect_errors.insert(peer, text);
    }

    /// Why the last connect to `peer` failed, while no session with it
    /// has come up since.
    pub fn connect_error(&self, peer: Ipv4Addr) -> Option<&str> {
        self.connect_errors.get(&peer).map(String::as_str)
    }

    pub fn send_drops(&self, peer: Ipv4Addr) -> u64 {
        self.sessions.get(&peer).map_or(0, |s| s.send_drops)
    }

    /// Seconds since the instance's epoch of `t` ago (for uptimes).
    pub fn age_secs(&self, t: Timestamp) -> u64 {
        self.now().saturating_duration_since(t).as_secs()
    }

    /// Seconds from now until `t` (0 when past).
    pub fn secs_until(&self, t: Timestamp) -> u64 {
        t.saturating_duration_since(self.now()).as_secs()
    }

    /// Brings the instance in line with the `msdp` section: starts it,
    /// applies only the differences (peers whose session settings did not
    /// change keep their TCP session), or stops it.
    pub fn sync(&mut self, config: &mcr_config::MsdpConfig) {
        let want = protocol_config(config);
        if want == self.last {
            return;
        }
        match want {
            None => self.stop(),
            Some(c) => {
                self.bind_listener();
                if self.msdp.is_none() {
                    tracing::info!(local_address = %c.local_address, peers = c.peers.len(), "MSDP starting");
                    let mut m = Msdp::new();
                    if let Some(f) = kernel_peer_rpf() {
                        m.set_peer_rpf(f);
                    }
                    self.msdp = Some(m);
                }
                self.connect_errors.retain(|a, _| c.peers.contains_key(a));
                self.last = Some(c.clone());
                self.run(MsdpInput::Config(c), None);
                if !self.local_sources.is_empty() {
                    let s = self.local_sources.clone();
                    self.run(MsdpInput::LocalSources(s), None);
                }
            }
        }
    }

    fn stop(&mut self) {
        if let Some(m) = &self.msdp {
            // The cache goes with the instance: its SAs stop being active
            // sources for the trees.
            let gone: Vec<SaChange> = m
                .sa_cache()
                .map(|(k, _)| SaChange::Expired {
                    source: k.source,
                    group: k.group,
                    rp: k.rp,
                })
                .collect();
            for c in gone {
                self.push_change(c);
            }
            self.run(MsdpInput::Shutdown, None);
            tracing::info!("MSDP stopped");
        }
        self.msdp = None;
        self.last = None;
        self.timers.clear();
        self.sessions.clear();
        self.connecting.clear();
        self.connect_errors.clear();
        self.listening.clear();
    }

    /// The daemon is stopping: closes every session.
    pub fn shutdown(&mut self) {
        self.stop();
    }

    /// Sets the active local sources, (S,G) pairs, this RP originates SAs
    /// for (RFC 3618 section 3: sources registered at this RP). New ones
    /// are advertised at once, all every 60 s (section 5.1). Kept across
    /// restarts of the instance.
    pub fn set_local_sources(&mut self, sources: impl IntoIterator<Item = (Ipv4Addr, Ipv4Addr)>) {
        let mut v: Vec<SaEntry> = sources
            .into_iter()
            .map(|(source, group)| SaEntry { source, group })
            .collect();
        v.sort();
        v.dedup();
        if v == self.local_sources {
            return;
        }
        self.local_sources = v.clone();
        self.run(MsdpInput::LocalSources(v), None);
    }

    /// SA cache changes since the last call (at most [`MAX_SA_CHANGES`];
    /// more were counted in `sa_changes_dropped`). Changes are kept from
    /// the first call on: a daemon with no consumer keeps none.
    pub fn take_sa_changes(&mut self) -> Vec<SaChange> {
        self.sa_changes_wanted = true;
        std::mem::take(&mut self.sa_changes)
    }

    /// Events for `subscribe --events msdp` since the last call.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// Descriptors the supervisor must poll for us.
    pub fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        let mut push = |fd, events| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            })
        };
        if let Some(l) = &self.listener {
            push(l.as_raw_fd(), libc::POLLIN);
        }
        for s in self.sessions.values() {
            let ev = if s.pending() > 0 {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            };
            push(s.stream.as_raw_fd(), ev);
        }
        for c in self.connecting.values() {
            push(c.as_raw_fd(), libc::POLLOUT);
        }
    }

    /// How long the loop may sleep: until the next MSDP timer.
    pub fn timeout(&self) -> Option<Duration> {
        self.timers.poll_timeout(self.now())
    }

    /// Accepts, completes connects, reads every session, fires timers and
    /// writes what is queued. Never blocks.
    pub fn poll(&mut self) {
        self.accept();
        self.check_connects();
        self.read_all();
        let now = self.now();
        while let Some((key, _)) = self.timers.pop_expired(now) {
            self.run(MsdpInput::Timer(key), None);
        }
        self.flush_all();
    }

    fn accept(&mut self) {
        let mut accepted = Vec::new();
        if let Some(l) = &self.listener {
            for _ in 0..ACCEPT_BUDGET {
                match l.accept() {
                    Ok((stream, addr)) => accepted.push((stream, addr)),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "MSDP accept failed");
                        break;
                    }
                }
            }
        }
        for (stream, addr) in accepted {
            self.counters.accepted += 1;
            let Some(peer) = ip_of(addr) else { continue };
            if self.msdp.is_none() || stream.set_nonblocking(true).is_err() {
                self.counters.rejected += 1;
                continue;
            }
            self.run(
                MsdpInput::TcpEstablished {
                    peer,
                    active: false,
                },
                Some((peer, stream)),
            );
        }
    }

    fn check_connects(&mut self) {
        let peers: Vec<Ipv4Addr> = self.connecting.keys().copied().collect();
        for peer in peers {
            let Some(c) = self.connecting.get(&peer) else {
                continue;
            };
            match c.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    self.note_connect_error(peer, format!("connect to {peer}: {e}"));
                    self.connecting.remove(&peer);
                    self.counters.connect_failures += 1;
                    self.run(MsdpInput::TcpConnectFailed { peer }, None);
                    continue;
                }
            }
            // Not connected yet (ENOTCONN) until the peer's address is
            // known: wait.
            if c.peer_addr().is_ok() {
                let Some(stream) = self.connecting.remove(&peer) else {
                    continue;
                };
                self.run(
                    MsdpInput::TcpEstablished { peer, active: true },
                    Some((peer, stream)),
                );
            }
        }
    }

    fn read_all(&mut self) {
        if self.sessions.is_empty() {
            return;
        }
        let peers: Vec<Ipv4Addr> = self.sessions.keys().copied().collect();
        let mut buf = vec![0u8; 16 * 1024];
        let mut tlvs = Vec::new();
        for peer in peers {
            let mut read = 0;
            let mut closed = false;
            let mut error = None;
            tlvs.clear();
            {
                let Some(s) = self.sessions.get_mut(&peer) else {
                    continue;
                };
                while read < READ_BUDGET {
                    match s.stream.read(&mut buf) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => {
                            read += n;
                            if let Err(e) = s.framer.feed(&buf[..n], &mut tlvs) {
                                error = Some(e);
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "MSDP read failed");
                            closed = true;
                            break;
                        }
                    }
                }
            }
            for tlv in tlvs.drain(..) {
                self.run(MsdpInput::Tlv { peer, tlv }, None);
            }
            if let Some(error) = error {
                tracing::warn!(%peer, %error, "MSDP TLV format error; closing the session (RFC 3618 section 13)");
                self.run(MsdpInput::FormatError { peer, error }, None);
                // The instance closes the session; a stale one must not
                // stay behind to be read again.
                self.sessions.remove(&peer);
            } else if closed && self.sessions.remove(&peer).is_some() {
                self.run(MsdpInput::TcpClosed { peer }, None);
            }
        }
    }

    fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for (peer, s) in self.sessions.iter_mut() {
            if s.pending() > 0 {
                if let Err(e) = s.flush() {
                    tracing::debug!(%peer, error = %e, "MSDP write failed");
                    failed.push(*peer);
                }
            }
        }
        for peer in failed {
            self.sessions.remove(&peer);
            self.run(MsdpInput::TcpClosed { peer }, None);
        }
    }

    /// Feeds one input; `incoming` is the connection the input reports
    /// (accepted or connected), adopted as `peer`'s session unless the
    /// instance rejects it.
    fn run(&mut self, input: MsdpInput, incoming: Option<(Ipv4Addr, TcpStream)>) {
        let now = self.now();
        let Some(m) = self.msdp.as_mut() else {
            return;
        };
        let mut acts = std::mem::take(&mut self.actions);
        acts.clear();
        m.handle(now, input, &mut acts);
        if let Some((peer, stream)) = incoming {
            let rejected = acts.iter().find_map(|a| match a {
                MsdpAction::Reject { peer: p, reason } if *p == peer => Some(*reason),
                _ => None,
            });
            match rejected {
                Some(reason) => {
                    self.counters.rejected += 1;
                    tracing::info!(%peer, %reason, "MSDP connection refused");
                }
                None => {
                    self.connect_errors.remove(&peer);
                    self.sessions.insert(peer, Session::new(stream));
                }
            }
        }
        for a in acts.drain(..) {
            self.execute(now, a);
        }
        self.actions = acts;
    }

    fn execute(&mut self, now: Timestamp, a: MsdpAction) {
        match a {
            MsdpAction::Connect { peer, local, port } => {
                self.counters.connects += 1;
                match start_connect(local, peer, port) {
                    Ok(s) => {
                        self.connecting.insert(peer, s);
                    }
                    Err(e) => {
                        self.note_connect_error(peer, format!("connect to {peer}: {e}"));
                        self.connecting.remove(&peer);
                        self.counters.connect_failures += 1;
                        // ConnectRetry is armed: the instance retries.
                    }
                }
            }
            MsdpAction::Listen { peer } => {
                self.listening.insert(peer);
            }
            MsdpAction::StopListening { peer } => {
                self.listening.remove(&peer);
            }
            MsdpAction::Close { peer, reason } => {
                let had = self.sessions.remove(&peer).is_some();
                self.connecting.remove(&peer);
                if had {
                    tracing::info!(%peer, %reason, "MSDP session closed");
                }
            }
            MsdpAction::Reject { .. } => {}
            MsdpAction::Send { peer, tlv } => {
                let Some(s) = self.sessions.get_mut(&peer) else {
                    return;
                };
                let len = tlv.buffer_len();
                // The instance splits SAs to fit; a TLV that still does not
                // (a bug) is dropped and counted, never a panic in emit.
                if !tlv.is_emittable() {
                    s.send_drops += 1;
                    self.counters.send_drops += 1;
                    return;
                }
                if s.pending() + len > WRITE_BUFFER_MAX {
                    s.send_drops += 1;
                    self.counters.send_drops += 1;
                    if s.send_drops == 1 {
                        tracing::warn!(%peer, "MSDP write buffer full (the peer does not read); dropping TLVs");
                    }
                    return;
                }
                s.wbuf.extend_from_slice(&tlv.to_bytes());
            }
            MsdpAction::ArmTimer { key, at } => {
                if self.timers.arm(key, at).is_err() {
                    self.counters.timer_drops += 1;
                }
            }
            MsdpAction::CancelTimer { key } => {
                self.timers.cancel(&key);
            }
            MsdpAction::Event(e) => self.event(now, e),
        }
    }

    fn event(&mut self, _now: Timestamp, e: MsdpEvent) {
        let v = match e {
            MsdpEvent::PeerUp { peer } => {
                tracing::info!(%peer, "MSDP peer up");
                json!({"event": "peer-up", "peer": peer})
            }
            MsdpEvent::PeerDown { peer, reason } => {
                tracing::info!(%peer, %reason, "MSDP peer down");
                json!({"event": "peer-down", "peer": peer, "reason": reason})
            }
            MsdpEvent::SaAdded { key, peer } => {
                self.push_change(SaChange::Added {
                    source: key.source,
                    group: key.group,
                    rp: key.rp,
                    peer,
                });
                json!({"event": "sa-added", "source": key.source, "group": key.group, "rp": key.rp, "peer": peer})
            }
            MsdpEvent::SaExpired { key } => {
                self.push_change(SaChange::Expired {
                    source: key.source,
                    group: key.group,
                    rp: key.rp,
                });
                json!({"event": "sa-expired", "source": key.source, "group": key.group, "rp": key.rp})
            }
        };
        self.events.push(v);
    }

    fn push_change(&mut self, c: SaChange) {
        if !self.sa_changes_wanted {
            return;
        }
        if self.sa_changes.len() >= MAX_SA_CHANGES {
            self.counters.sa_changes_dropped += 1;
        } else {
            self.sa_changes.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> mcr_config::MsdpConfig {
        mcr_config::parse_str(text, "test").expect("valid").msdp
    }

    #[test]
    fn disabled_or_unaddressed_sections_run_nothing() {
        assert_eq!(
            protocol_config(&section("{ msdp: { enabled: false } }")),
            None
        );
        assert_eq!(
            protocol_config(&section("{ msdp: { enabled: true } }")),
            None
        );
    }

    #[test]
    fn peers_limits_and_filters_map_to_the_instance() {
        let c = protocol_config(&section(
            "{ msdp: { enabled: true, local_address: '10.0.0.1', keepalive_interval: 5, hold_time: 12, sa_cache_limit: 50,
               peers: [ { address: '10.0.0.2', mesh_group: 'm', sa_limit: 7,
                          sa_filter_in: [ { source: '10.9.0.0/16' }, { group: '239.1.0.0/16', action: 'permit' } ],
                          sa_filter_out: [ { group: '239.2.2.2' } ] },
                        { address: '10.0.0.3', default_peer: true } ] } }",
        ))
        .expect("runs");
        assert_eq!(c.local_address, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            (c.keepalive_interval, c.hold_time, c.sa_cache_limit),
            (5, 12, 50)
        );
        let p = &c.peers[&Ipv4Addr::new(10, 0, 0, 2)];
        assert_eq!(p.sa_limit, 7);
        assert_eq!(p.mesh_group.as_deref(), Some("m"));
        let s = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        // Denied by source, whatever the group.
        assert!(!p.filter_in.permits(s(10, 9, 1, 1), s(239, 1, 1, 1)));
        assert!(p.filter_in.permits(s(10, 8, 1, 1), s(239, 1, 1, 1)));
        assert!(!p.filter_out.permits(s(10, 8, 1, 1), s(239, 2, 2, 2)));
        assert!(p.filter_out.permits(s(10, 8, 1, 1), s(239, 2, 2, 3)));
        let q = &c.peers[&Ipv4Addr::new(10, 0, 0, 3)];
        assert!(q.default_peer);
        assert_eq!(q.sa_limit, DEFAULT_PEER_SA_LIMIT);
        assert!(q.filter_in.permits(s(1, 2, 3, 4), s(239, 0, 0, 1)));
    }

    /// A runtime with one Established peer (10.0.0.2, we are 10.0.0.9 and
    /// listen), its session a real loopback TCP connection; the other end
    /// returned for the test to read.
    fn established() -> (MsdpRuntime, TcpStream) {
        let mut rt = MsdpRuntime::new();
        rt.msdp = Some(Msdp::new());
        let c = protocol_config(&section(
            "{ msdp: { enabled: true, local_address: '10.0.0.9', peers: [ { address: '10.0.0.2', sa_limit: 2 } ] } }",
        ))
        .unwrap();
        rt.last = Some(c.clone());
        rt.run(MsdpInput::Config(c), None);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let far = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (near, _) = l.accept().unwrap();
        near.set_nonblocking(true).unwrap();
        let peer = Ipv4Addr::new(10, 0, 0, 2);
        rt.run(
            MsdpInput::TcpEstablished {
                peer,
                active: false,
            },
            Some((peer, near)),
        );
        (rt, far)
    }

    fn sa(rp: [u8; 4], n: u8) -> mcr_wire::msdp::Repr {
        mcr_wire::msdp::Repr::SourceActive {
            rp: rp.into(),
            entries: (1..=n)
                .map(|i| SaEntry {
                    source: Ipv4Addr::new(10, 9, 0, i),
                    group: Ipv4Addr::new(239, 1, 1, 1),
                })
                .collect(),
            data: Vec::new(),
        }
    }

    #[test]
    fn an_adopted_session_gets_a_keepalive_and_its_sas_become_changes_and_events() {
        let (mut rt, mut far) = established();
        assert!(rt.take_sa_changes().is_empty());
        let peer = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            rt.instance().unwrap().peer(peer).unwrap().state,
            mcr_protocols::msdp::PeerState::Established
        );
        rt.flush_all();
        let mut buf = [0u8; 64];
        far.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = far.read(&mut buf).unwrap();
        let mut tlvs = Vec::new();
        TlvFramer::new().feed(&buf[..n], &mut tlvs).unwrap();
        assert_eq!(tlvs, vec![mcr_wire::msdp::Repr::KeepAlive]);
        // Three SAs from the peer (RP = the peer): two cached (sa_limit 2).
        rt.run(
            MsdpInput::Tlv {
                peer,
                tlv: sa([10, 0, 0, 2], 3),
            },
            None,
        );
        let changes = rt.take_sa_changes();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(matches!(changes[0], SaChange::Added { peer: p, .. } if p == peer));
        assert!(rt.take_sa_changes().is_empty(), "taken once");
        let events = rt.take_events();
        assert_eq!(events[0]["event"], "peer-up");
        assert_eq!(
            events.iter().filter(|e| e["event"] == "sa-added").count(),
            2
        );
        let p = rt.instance().unwrap().peer(peer).unwrap();
        assert_eq!((p.stats.sa_in, p.stats.limit_drops), (3, 1));
        // The session's addresses are the TCP connection's.
        let (l, r) = rt.session_addrs(peer).unwrap();
        assert_eq!(r, far.local_addr().ok());
        assert_eq!(l, far.peer_addr().ok());
    }

    #[test]
    fn stopping_msdp_expires_every_cached_sa_for_the_trees() {
        let (mut rt, _far) = established();
        assert!(rt.take_sa_changes().is_empty());
        let peer = Ipv4Addr::new(10, 0, 0, 2);
        rt.run(
            MsdpInput::Tlv {
                peer,
                tlv: sa([10, 0, 0, 2], 2),
            },
            None,
        );
        assert_eq!(rt.take_sa_changes().len(), 2);
        // The section is disabled: the cache goes, and the trees hear so.
        rt.sync(&section("{ msdp: { enabled: false } }"));
        assert!(!rt.running());
        let gone = rt.take_sa_changes();
        assert_eq!(gone.len(), 2, "{gone:?}");
        assert!(gone
            .iter()
            .all(|c| matches!(c, SaChange::Expired { rp, .. } if *rp == peer)));
    }

    #[test]
    fn a_peer_that_does_not_read_gets_a_bounded_buffer_and_drops_counted() {
        let (mut rt, _far) = established();
        let peer = Ipv4Addr::new(10, 0, 0, 2);
        let now = rt.now();
        // 200 full SA TLVs (3,068 bytes each) without a flush: 600 KB.
        for _ in 0..200 {
            rt.execute(
                now,
                MsdpAction::Send {
                    peer,
                    tlv: sa([10, 0, 0, 7], 255),
                },
            );
        }
        let s = &rt.sessions[&peer];
        assert!(s.pending() <= WRITE_BUFFER_MAX, "{}", s.pending());
        assert!(rt.send_drops(peer) >= 100, "{}", rt.send_drops(peer));
        assert_eq!(rt.socket_counters().send_drops, rt.send_drops(peer));
    }

    #[test]
    fn a_failed_connect_is_the_peers_error_until_a_session_comes_up() {
        // We are the lower address, so we connect (RFC 3618 section 5), to
        // a loopback address where nothing listens on the MSDP port.
        let mut rt = MsdpRuntime::new();
        rt.msdp = Some(Msdp::new());
        let c = protocol_config(&section(
            "{ msdp: { enabled: true, local_address: '127.0.0.1', peers: [ { address: '127.0.0.2' } ] } }",
        ))
        .unwrap();
        rt.last = Some(c.clone());
        rt.run(MsdpInput::Config(c), None);
        let peer = Ipv4Addr::new(127, 0, 0, 2);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while rt.connect_error(peer).is_none() && std::time::Instant::now() < deadline {
            rt.check_connects();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let e = rt.connect_error(peer).expect("the refused connect is kept");
        assert!(e.contains("refused") && e.contains("127.0.0.2"), "{e}");
        // The next connect that works clears it.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _far = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (near, _) = l.accept().unwrap();
        near.set_nonblocking(true).unwrap();
        rt.run(
            MsdpInput::TcpEstablished { peer, active: true },
            Some((peer, near)),
        );
        assert_eq!(rt.connect_error(peer), None);
    }

    #[test]
    fn a_rejected_connection_leaves_the_session_alone() {
        let (mut rt, _far) = established();
        let peer = Ipv4Addr::new(10, 0, 0, 2);
        let before = rt.session_addrs(peer);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _other = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (second, _) = l.accept().unwrap();
        rt.run(
            MsdpInput::TcpEstablished {
                peer,
                active: false,
            },
            Some((peer, second)),
        );
        assert_eq!(rt.session_addrs(peer), before);
        assert_eq!(rt.socket_counters().rejected, 1);
    }

    #[test]
    fn local_sources_are_kept_for_a_later_instance() {
        let mut rt = MsdpRuntime::new();
        rt.listen_port = 0;
        rt.set_local_sources([(Ipv4Addr::new(10, 1, 1, 1), Ipv4Addr::new(239, 1, 1, 1))]);
        assert!(!rt.running());
        rt.sync(&section(
            "{ msdp: { enabled: true, local_address: '10.0.0.9', peers: [ { address: '10.0.0.2' } ] } }",
        ));
        assert!(rt.running());
        let m = rt.instance().unwrap();
        assert_eq!(m.local_sources().count(), 1);
        rt.sync(&section("{ msdp: { enabled: false } }"));
        assert!(!rt.running());
    }
}
