//! The traffic listener (`mcrd listen`): joins a group, receives with
//! `recvmmsg`, and accounts every packet per (source address, stream id).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::account::{Histogram, LatencyUs, StreamTracker};
use super::header;
use super::sys::{self, Iface};

/// Most receive buffers taken per `recvmmsg` (each one datagram, or with
/// `--gro` a merged run of them).
pub const BATCH: usize = 64;
/// Receive timeout per call, so count/duration/signals stop us promptly.
const POLL: Duration = Duration::from_millis(20);
/// Receive buffer asked for.
const RCVBUF: i32 = 8 << 20;
const SLOT: usize = 65536;
/// Control-message space per buffer: IP_TTL, SCM_TIMESTAMPNS and UDP_GRO.
const CMSG_BUF: usize = 128;
// SAFETY: CMSG_SPACE only does arithmetic on its argument.
const _: () = assert!(
    CMSG_BUF
        >= unsafe { libc::CMSG_SPACE(4) + libc::CMSG_SPACE(16) + libc::CMSG_SPACE(4) } as usize
);

/// Command-line arguments of the listener (embeddable with
/// `#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArgs {
    /// Interface to join on (name, or one of its IPv4 addresses). With a
    /// name the socket is also bound to the device (SO_BINDTODEVICE), so
    /// traffic arriving on other interfaces is not counted.
    #[arg(long, short = 'i')]
    pub interface: Option<String>,
    /// Multicast group to join and bind to, or a local unicast address to
    /// bind to. Absent: bind 0.0.0.0.
    #[arg(long, short = 'g')]
    pub group: Option<Ipv4Addr>,
    /// UDP port.
    #[arg(long, short = 'p', default_value_t = 5001)]
    pub port: u16,
    /// Only count packets from this source; for a multicast group, join
    /// source-specifically (IP_ADD_SOURCE_MEMBERSHIP / MCAST_JOIN_SOURCE_GROUP).
    #[arg(long)]
    pub source: Option<Ipv4Addr>,
    /// Stop after this many packets.
    #[arg(long, short = 'c')]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Stop after this many seconds without a packet, once one has arrived.
    #[arg(long)]
    pub idle_timeout: Option<f64>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Create this file once the socket is bound and joined.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Ask for UDP receive offload (UDP_GRO): the kernel may hand over a
    /// run of same-sized datagrams of one flow in one buffer, which is
    /// split here and counted datagram by datagram. Much cheaper at high
    /// rates; the receive timestamp is then the run's, so leave it off
    /// for latency measurements.
    #[arg(long)]
    pub gro: bool,
}

impl ListenArgs {
    /// Arguments with every default, for use from code.
    pub fn new(group: Option<Ipv4Addr>, port: u16) -> Self {
        ListenArgs {
            interface: None,
            group,
            port,
            source: None,
            count: None,
            duration: None,
            idle_timeout: None,
            json: false,
            ready_file: None,
            gro: false,
        }
    }
}

/// Counts for one (source address, stream id), or the totals.
#[derive(Debug, Clone, Serialize)]
pub struct StreamSummary {
    /// Source IPv4 address (None in the totals).
    pub source: Option<String>,
    /// Stream id; None for packets without a full header (shorter than 24
    /// bytes or without the MCRG magic), which are counted but not
    /// sequence-checked, and in the totals.
    pub stream: Option<u32>,
    /// Packets, duplicates included.
    pub received: u64,
    pub bytes: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Arrived below the highest sequence seen (includes `late`).
    pub reordered: u64,
    /// Arrived more than 65536 sequence numbers late (not dup-checked).
    pub late: u64,
    pub corrupted: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// FNV-1a 64 over all payload bytes of the stream in receive order.
    pub payload_hash: Option<String>,
    pub min_size: Option<usize>,
    pub max_size: Option<usize>,
    pub ttl_min: Option<u8>,
    pub ttl_max: Option<u8>,
    /// Receive time (kernel timestamp) minus the send timestamp.
    pub latency_us: LatencyUs,
}

/// Packets seen from one source ip:port.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    pub address: String,
    pub packets: u64,
}

/// What the listener saw.
#[derive(Debug, Clone, Serialize)]
pub struct ListenSummary {
    /// Packets counted (not those dropped by --source).
    pub packets: u64,
    pub bytes: u64,
    /// Receive buffers they came in: equal to `packets` unless `--gro` let
    /// the kernel merge runs of datagrams.
    pub buffers: u64,
    /// From ready to stop.
    pub elapsed_secs: f64,
    /// From the first to the last packet.
    pub active_secs: f64,
    /// (packets - 1) / active_secs; 0 with fewer than 2 packets.
    pub pps: f64,
    /// Packets without a full mcrgen header.
    pub unsequenced: u64,
    /// Packets ignored because they came from another source than --source.
    pub ignored: u64,
    /// count | duration | idle | signal
    pub stop_reason: String,
    /// Receive buffer the kernel granted (bytes, as getsockopt reports).
    pub rcvbuf: i32,
    pub sources: Vec<SourceSummary>,
    pub streams: Vec<StreamSummary>,
    pub total: StreamSummary,
}

impl ListenSummary {
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "received {} packets ({} bytes) in {:.3} s, {:.0} pps while active; stop: {}",
            self.packets, self.bytes, self.elapsed_secs, self.pps, self.stop_reason
        );
        if self.buffers != self.packets {
            let _ = writeln!(s, "in {} receive buffers (UDP GRO)", self.buffers);
        }
        if self.unsequenced > 0 || self.ignored > 0 {
            let _ = writeln!(
                s,
                "unsequenced {}  ignored {}",
                self.unsequenced, self.ignored
            );
        }
        for src in &self.sources {
            let _ = writeln!(s, "source {}: {} packets", src.address, src.packets);
        }
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let line = |s: &mut String, name: String, t: &StreamSummary| {
            let _ = writeln!(
                s,
                "{name}: received {} bytes {} lost {} dup {} reordered {} (late {}) corrupted {} \
                 seq {}..{} size {}..{} ttl {}..{} hash {} latency_us p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
                t.received, t.bytes, t.lost, t.duplicates, t.reordered, t.late, t.corrupted,
                opt(t.first_seq), opt(t.last_seq),
                opt(t.min_size.map(|v| v as u64)), opt(t.max_size.map(|v| v as u64)),
                opt(t.ttl_min.map(u64::from)), opt(t.ttl_max.map(u64::from)),
                t.payload_hash.as_deref().unwrap_or("-"),
                t.latency_us.p50, t.latency_us.p99, t.latency_us.p999, t.latency_us.max
            );
        };
        for t in &self.streams {
            let name = format!(
                "stream {} from {}",
                t.stream
                    .map_or("(no header)".to_string(), |v| v.to_string()),
                t.source.as_deref().unwrap_or("-")
            );
            line(&mut s, name, t);
        }
        line(&mut s, "total".to_string(), &self.total);
        s
    }

    /// Print to stdout, as JSON or text.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).expect("serializable"));
        } else {
            print!("{}", self.to_text());
        }
    }
}

fn storage(a: Ipv4Addr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is larger than sockaddr_in and zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let sin = sys::sockaddr_in(SocketAddrV4::new(a, 0));
    // SAFETY: sockaddr_storage is big and aligned enough for a sockaddr_in.
    unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
    ss
}

fn open_socket(args: &ListenArgs) -> anyhow::Result<(OwnedFd, i32)> {
    let fd = sys::udp_socket()?;
    let group = args.group.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let multicast = group.is_multicast();
    sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
        .context("SO_REUSEADDR")?;
    let rcvbuf = sys::set_buffer(
        fd.as_raw_fd(),
        libc::SO_RCVBUFFORCE,
        libc::SO_RCVBUF,
        RCVBUF,
    );
    sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
        .context("IP_RECVTTL")?;
    sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
        .context("SO_TIMESTAMPNS")?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL.as_micros() as libc::suseconds_t,
    };
    sys::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
        .context("SO_RCVTIMEO")?;
    if args.gro {
        sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, 1).context("UDP_GRO")?;
    }
    let iface = args.interface.as_deref().map(Iface::parse);
    let mut ifindex = 0u32;
    let mut ifaddr = Ipv4Addr::UNSPECIFIED;
    match &iface {
        None => {}
        Some(Iface::Addr(a)) => ifaddr = *a,
        Some(Iface::Name(n)) => {
            ifindex = sys::ifindex(n)?;
            if let Err(e) = sys::bind_to_device(fd.as_raw_fd(), n) {
                tracing::warn!("SO_BINDTODEVICE {n}: {e}; counting traffic from any interface");
            }
        }
    }
    if multicast {
        // Only groups this socket joined, not every group the host joined.
        sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, 0)
            .context("IP_MULTICAST_ALL")?;
    }
    sys::bind(&fd, SocketAddrV4::new(group, args.port))?;
    if multicast {
        match args.source {
            Some(src) if ifindex == 0 && !ifaddr.is_unspecified() => {
                let m = libc::ip_mreq_source {
                    imr_multiaddr: sys::in_addr(group),
                    imr_interface: sys::in_addr(ifaddr),
                    imr_sourceaddr: sys::in_addr(src),
                };
                sys::setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_ADD_SOURCE_MEMBERSHIP,
                    &m,
                )
                .with_context(|| format!("join ({src}, {group})"))?;
            }
            Some(src) => {
                let g = libc::group_source_req {
                    gsr_interface: ifindex,
                    gsr_group: storage(group),
                    gsr_source: storage(src),
                };
                sys::setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::MCAST_JOIN_SOURCE_GROUP,
                    &g,
                )
                .with_context(|| format!("join ({src}, {group})"))?;
            }
            None => {
                let m = libc::ip_mreqn {
                    imr_multiaddr: sys::in_addr(group),
                    imr_address: sys::in_addr(ifaddr),
                    imr_ifindex: ifindex as i32,
                };
                sys::setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_ADD_MEMBERSHIP,
                    &m,
                )
                .with_context(|| format!("join {group}"))?;
            }
        }
    }
    Ok((fd, rcvbuf))
}

type Key = (u32, Option<u32>);

struct Accounts {
    index: HashMap<Key, usize>,
    trackers: Vec<(Key, StreamTracker)>,
    last: Option<(Key, usize)>,
}

impl Accounts {
    #[inline]
    fn get(&mut self, key: Key) -> &mut StreamTracker {
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let n = self.trackers.len();
                let i = *self.index.entry(key).or_insert(n);
                if i == n {
                    self.trackers.push((key, StreamTracker::new()));
                }
                self.last = Some((key, i));
                i
            }
        };
        &mut self.trackers[i].1
    }
}

/// What the control messages of one received buffer say.
#[derive(Default)]
struct RecvInfo {
    ttl: Option<u8>,
    timestamp_ns: Option<u64>,
    /// Size of each datagram when the buffer holds a run of them (UDP_GRO).
    segment: Option<usize>,
}

/// Parse IP_TTL, SCM_TIMESTAMPNS and UDP_GRO out of a received message.
fn parse_cmsgs(hdr: &libc::msghdr) -> RecvInfo {
    let mut info = RecvInfo::default();
    // SAFETY: hdr.msg_control/controllen describe our buffer as filled by
    // the kernel; CMSG_FIRSTHDR/NXTHDR only return headers that lie within
    // it, and each payload is read only when its header's cmsg_len says the
    // whole value is there (a message cut short by MSG_CTRUNC is skipped).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            let holds = |n: usize| (*c).cmsg_len as usize >= libc::CMSG_LEN(n as u32) as usize;
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_TTL) if holds(4) => {
                    info.ttl = Some(std::ptr::read_unaligned(data as *const i32) as u8);
                }
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS)
                    if holds(std::mem::size_of::<libc::timespec>()) =>
                {
                    let t = std::ptr::read_unaligned(data as *const libc::timespec);
                    info.timestamp_ns = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
                }
                (libc::SOL_UDP, libc::UDP_GRO) if holds(4) => {
                    let size = std::ptr::read_unaligned(data as *const i32);
                    info.segment = usize::try_from(size).ok().filter(|&n| n > 0);
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    info
}

/// The datagrams of a received buffer: `step`-byte pieces, the last one
/// possibly shorter; an empty buffer is one empty datagram.
fn chunks(buffer: &[u8], step: usize) -> impl Iterator<Item = &[u8]> {
    let empty: &[u8] = &[];
    let lone = buffer.is_empty().then_some(empty);
    buffer.chunks(step).chain(lone)
}

/// Receive until count, duration, idle timeout or SIGINT/SIGTERM.
pub fn run(args: &ListenArgs) -> anyhow::Result<ListenSummary> {
    if args.port == 0 {
        bail!("--port must not be 0");
    }
    for (name, v) in [
        ("--duration", args.duration),
        ("--idle-timeout", args.idle_timeout),
    ] {
        if let Some(v) = v {
            if !(v >= 0.0 && v.is_finite()) {
                bail!("{name} must be a non-negative number of seconds");
            }
        }
    }
    let (fd, rcvbuf) = open_socket(args)?;
    sys::stop_flag();
    if let Some(p) = &args.ready_file {
        std::fs::write(p, b"ready\n")
            .with_context(|| format!("writing ready file {}", p.display()))?;
    }

    let mut bufs = vec![0u8; SLOT * BATCH];
    // SAFETY: plain C structs; zero is a valid value for each.
    let mut names: Vec<libc::sockaddr_in> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut cmsgs: Vec<[u64; CMSG_BUF / 8]> = vec![[0; CMSG_BUF / 8]; BATCH];
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    for j in 0..BATCH {
        iovs[j].iov_base = bufs[j * SLOT..].as_mut_ptr() as *mut libc::c_void;
        iovs[j].iov_len = SLOT;
        msgs[j].msg_hdr.msg_iov = &mut iovs[j];
        msgs[j].msg_hdr.msg_iovlen = 1;
        msgs[j].msg_hdr.msg_name = &mut names[j] as *mut libc::sockaddr_in as *mut libc::c_void;
        msgs[j].msg_hdr.msg_control = cmsgs[j].as_mut_ptr() as *mut libc::c_void;
    }

    let mut acc = Accounts {
        index: HashMap::new(),
        trackers: Vec::new(),
        last: None,
    };
    let mut sources: HashMap<SocketAddrV4, u64> = HashMap::new();
    let mut last_src: Option<(SocketAddrV4, u64)> = None; // pending count for the last source
    let (mut packets, mut bytes, mut ignored, mut unsequenced) = (0u64, 0u64, 0u64, 0u64);
    let mut buffers = 0u64;
    let mut warned_truncated = false;
    let limit = args.count.unwrap_or(u64::MAX);
    let t0 = Instant::now();
    let end = args.duration.map(|d| t0 + Duration::from_secs_f64(d));
    let idle = args.idle_timeout.map(Duration::from_secs_f64);
    let mut first_at: Option<Instant> = None;
    let mut last_at = t0;
    let stop_reason;

    loop {
        if packets >= limit {
            stop_reason = "count";
            break;
        }
        if sys::stop_requested() {
            stop_reason = "signal";
            break;
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            stop_reason = "duration";
            break;
        }
        if let (Some(idle), Some(_)) = (idle, first_at) {
            if now - last_at >= idle {
                stop_reason = "idle";
                break;
            }
        }
        let vlen = BATCH.min((limit - packets).min(BATCH as u64) as usize);
        for m in &mut msgs[..vlen] {
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_controllen = CMSG_BUF as _;
            m.msg_hdr.msg_flags = 0;
        }
        // SAFETY: msgs[..vlen] point into live buffers owned above.
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                vlen as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => return Err(e).context("recvmmsg"),
            }
        }
        let rc = rc as usize;
        if rc == 0 {
            continue;
        }
        let rx_at = Instant::now();
        let now_ns = sys::realtime_ns();
        for j in 0..rc {
            let len = msgs[j].msg_len as usize;
            let buffer = &bufs[j * SLOT..j * SLOT + len];
            let src = sys::from_sockaddr_in(&names[j]);
            let info = parse_cmsgs(&msgs[j].msg_hdr);
            // Without UDP_GRO (or for a lone datagram) the buffer is one
            // datagram; with it, a run of `segment`-byte datagrams and a
            // possibly shorter last one.
            let step = info.segment.unwrap_or(len).max(1);
            let flags = msgs[j].msg_hdr.msg_flags;
            if flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 && !warned_truncated {
                // Cannot happen with our 64 KiB slots and control space;
                // say so rather than miscount quietly if it ever does.
                tracing::warn!(
                    "a received buffer or its control data was truncated (flags {flags:#x})"
                );
                warned_truncated = true;
            }
            if args.source.is_some_and(|s| s != *src.ip()) {
                ignored += chunks(buffer, step).count() as u64;
                continue;
            }
            // --count: with merged runs a buffer may hold more than is left.
            let take = usize::try_from(limit - packets).unwrap_or(usize::MAX);
            if take == 0 {
                break;
            }
            buffers += 1;
            let counted_before = packets;
            let src_ip = u32::from(*src.ip());
            let rx_ns = info.timestamp_ns.unwrap_or(now_ns);
            for payload in chunks(buffer, step).take(take) {
                packets += 1;
                bytes += payload.len() as u64;
                match header::decode(payload) {
                    Some(h) => {
                        let corrupt = !header::verify_filler(payload, h.stream_id, h.seq);
                        acc.get((src_ip, Some(h.stream_id))).record(
                            payload,
                            h.seq,
                            h.timestamp_ns,
                            rx_ns,
                            corrupt,
                            info.ttl,
                        );
                    }
                    None => {
                        unsequenced += 1;
                        acc.get((src_ip, None))
                            .record_unsequenced(payload, info.ttl);
                    }
                }
            }
            let datagrams = packets - counted_before;
            match &mut last_src {
                Some((a, n)) if *a == src => *n += datagrams,
                _ => {
                    if let Some((a, n)) = last_src.take() {
                        *sources.entry(a).or_insert(0) += n;
                    }
                    last_src = Some((src, datagrams));
                }
            }
        }
        if packets > 0 {
            first_at.get_or_insert(rx_at);
            last_at = rx_at;
        }
    }
    if let Some((a, n)) = last_src.take() {
        *sources.entry(a).or_insert(0) += n;
    }

    let elapsed = t0.elapsed().as_secs_f64();
    let active = first_at.map_or(0.0, |f| (last_at - f).as_secs_f64());
    let mut trackers = acc.trackers;
    trackers.sort_by_key(|(k, _)| *k);
    let mut total_lat = Histogram::new();
    let mut total = StreamSummary {
        source: None,
        stream: None,
        received: 0,
        bytes: 0,
        lost: 0,
        duplicates: 0,
        reordered: 0,
        late: 0,
        corrupted: 0,
        first_seq: None,
        last_seq: None,
        payload_hash: None,
        min_size: None,
        max_size: None,
        ttl_min: None,
        ttl_max: None,
        latency_us: LatencyUs::default(),
    };
    let omin = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => a.or(b),
    };
    let omax = |a: Option<u64>, b: Option<u64>| a.max(b);
    let mut streams = Vec::with_capacity(trackers.len());
    for ((ip, stream), t) in &trackers {
        let sequenced = stream.is_some();
        let s = StreamSummary {
            source: Some(Ipv4Addr::from(*ip).to_string()),
            stream: *stream,
            received: t.received,
            bytes: t.bytes,
            lost: t.seq.lost(),
            duplicates: t.seq.duplicates,
            reordered: t.seq.reordered,
            late: t.seq.late,
            corrupted: t.corrupted,
            first_seq: if sequenced { t.seq.first_seq() } else { None },
            last_seq: if sequenced { t.seq.last_seq() } else { None },
            payload_hash: Some(t.hash_hex()),
            min_size: (t.received > 0).then_some(t.min_size),
            max_size: (t.received > 0).then_some(t.max_size),
            ttl_min: t.ttl_min,
            ttl_max: t.ttl_max,
            latency_us: t.latency_ns.latency_us(),
        };
        total.received += s.received;
        total.bytes += s.bytes;
        total.lost += s.lost;
        total.duplicates += s.duplicates;
        total.reordered += s.reordered;
        total.late += s.late;
        total.corrupted += s.corrupted;
        total.min_size = omin(
            total.min_size.map(|v| v as u64),
            s.min_size.map(|v| v as u64),
        )
        .map(|v| v as usize);
        total.max_size = omax(
            total.max_size.map(|v| v as u64),
            s.max_size.map(|v| v as u64),
        )
        .map(|v| v as usize);
        total.ttl_min =
            omin(total.ttl_min.map(u64::from), s.ttl_min.map(u64::from)).map(|v| v as u8);
        total.ttl_max =
            omax(total.ttl_max.map(u64::from), s.ttl_max.map(u64::from)).map(|v| v as u8);
        total_lat.merge(&t.latency_ns);
        streams.push(s);
    }
    total.latency_us = total_lat.latency_us();
    let mut sources: Vec<SourceSummary> = sources
        .into_iter()
        .map(|(a, n)| SourceSummary {
            address: a.to_string(),
            packets: n,
        })
        .collect();
    sources.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(ListenSummary {
        packets,
        bytes,
        buffers,
        elapsed_secs: elapsed,
        active_secs: active,
        pps: if packets >= 2 && active > 0.0 {
            (packets - 1) as f64 / active
        } else {
            0.0
        },
        unsequenced,
        ignored,
        stop_reason: stop_reason.to_string(),
        rcvbuf,
        sources,
        streams,
        total,
    })
}

/// Run and print the summary; what `mcrd listen` does.
pub fn main(args: &ListenArgs) -> anyhow::Result<ListenSummary> {
    let s = run(args)?;
    s.print(args.json);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{self, GenArgs};
    use std::net::UdpSocket;

    fn free_port() -> u16 {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn ready_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "mcr-listen-{tag}-{}-{}",
            std::process::id(),
            sys::realtime_ns()
        ))
    }

    /// Start a listener thread and wait until it is ready.
    fn spawn(
        mut l: ListenArgs,
        tag: &str,
    ) -> std::thread::JoinHandle<anyhow::Result<ListenSummary>> {
        let ready = ready_path(tag);
        l.ready_file = Some(ready.clone());
        let h = std::thread::spawn(move || run(&l));
        let t = Instant::now();
        while !ready.exists() {
            assert!(t.elapsed() < Duration::from_secs(5), "listener not ready");
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = std::fs::remove_file(&ready);
        h
    }

    #[test]
    fn merged_runs_split_into_datagrams() {
        let buf: Vec<u8> = (0..10).collect();
        let parts: Vec<&[u8]> = chunks(&buf, 4).collect();
        assert_eq!(parts, vec![&buf[0..4], &buf[4..8], &buf[8..10]]);
        // A lone datagram: one piece, whatever its size.
        assert_eq!(chunks(&buf, 10).count(), 1);
        // An empty datagram is still a datagram.
        assert_eq!(chunks(&[], 1).collect::<Vec<_>>(), vec![&[] as &[u8]]);
    }

    #[test]
    fn loopback_10k_at_20kpps() {
        let port = free_port();
        let mut l = ListenArgs::new(Some(Ipv4Addr::LOCALHOST), port);
        l.count = Some(10_000);
        l.duration = Some(10.0);
        l.idle_timeout = Some(2.0);
        let h = spawn(l, "10k");
        let mut g = GenArgs::new(Ipv4Addr::LOCALHOST, port);
        g.count = Some(10_000);
        g.rate = 20_000.0;
        g.size = 200;
        let gs = gen::run(&g).unwrap();
        assert_eq!((gs.sent, gs.errors), (10_000, 0));
        // Accounting is the point here; pacing has its own test (this one
        // may run on a loaded machine, where the sender is descheduled for
        // longer than the generator's catch-up window).
        assert!(
            gs.achieved_pps > 10_000.0 && gs.achieved_pps < 21_000.0,
            "{}",
            gs.achieved_pps
        );
        let s = h.join().unwrap().unwrap();
        assert_eq!(s.stop_reason, "count");
        assert_eq!((s.packets, s.bytes, s.unsequenced), (10_000, 2_000_000, 0));
        assert_eq!(s.streams.len(), 1);
        let t = &s.streams[0];
        assert_eq!(t.stream, Some(0));
        assert_eq!(
            (t.received, t.lost, t.duplicates, t.reordered, t.corrupted),
            (10_000, 0, 0, 0, 0)
        );
        assert_eq!((t.first_seq, t.last_seq), (Some(0), Some(9_999)));
        assert_eq!((t.min_size, t.max_size), (Some(200), Some(200)));
        assert_eq!((t.ttl_min, t.ttl_max), (Some(64), Some(64)));
        assert_eq!(t.latency_us.samples, 10_000);
        assert!(t.latency_us.p50 < 100_000.0, "{:?}", t.latency_us);
        assert_eq!(s.total.received, 10_000);
        assert_eq!(s.sources.len(), 1);
        assert_eq!(
            s.sources[0].address,
            gs.source.replace("0.0.0.0", "127.0.0.1")
        );
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["total"]["lost"], 0);
        assert!(j["streams"][0]["payload_hash"].as_str().unwrap().len() == 16);
        assert!(s.to_text().contains("total: received 10000"));
    }

    #[test]
    fn streams_short_payloads_and_source_filter() {
        let port = free_port();
        let mut l = ListenArgs::new(None, port);
        l.idle_timeout = Some(0.3);
        l.duration = Some(5.0);
        let h = spawn(l, "short");
        let mut g = GenArgs::new(Ipv4Addr::LOCALHOST, port);
        g.count = Some(100);
        g.size = 10;
        g.ttl = Some(9);
        gen::run(&g).unwrap();
        let mut g = GenArgs::new(Ipv4Addr::LOCALHOST, port);
        g.count = Some(50);
        g.stream_id_base = 3;
        gen::run(&g).unwrap();
        let s = h.join().unwrap().unwrap();
        assert_eq!(s.stop_reason, "idle");
        assert_eq!((s.packets, s.unsequenced), (150, 100));
        assert_eq!(s.streams.len(), 2);
        let short = s.streams.iter().find(|t| t.stream.is_none()).unwrap();
        assert_eq!(
            (short.received, short.bytes, short.ttl_min),
            (100, 1000, Some(9))
        );
        let seq = s.streams.iter().find(|t| t.stream == Some(3)).unwrap();
        assert_eq!((seq.received, seq.lost, seq.last_seq), (50, 0, Some(49)));
        assert_eq!(s.sources.len(), 2);

        // A --source that matches nothing ignores everything.
        let port = free_port();
        let mut l = ListenArgs::new(Some(Ipv4Addr::LOCALHOST), port);
        l.source = Some(Ipv4Addr::new(192, 0, 2, 1));
        l.duration = Some(0.3);
        let h = spawn(l, "filter");
        let mut g = GenArgs::new(Ipv4Addr::LOCALHOST, port);
        g.count = Some(20);
        gen::run(&g).unwrap();
        let s = h.join().unwrap().unwrap();
        assert_eq!(
            (s.packets, s.ignored, s.stop_reason.as_str()),
            (0, 20, "duration")
        );
    }

    #[test]
    fn multicast_on_loopback() {
        // Multicast looped back through lo: generator with --loop and the
        // interface given by address, listener joined on lo by name.
        let port = free_port();
        let group = Ipv4Addr::new(239, 255, 77, 1);
        let mut l = ListenArgs::new(Some(group), port);
        l.interface = Some("lo".into());
        l.count = Some(1000);
        l.duration = Some(5.0);
        l.idle_timeout = Some(1.0);
        let h = spawn(l, "mcast");
        // A second listener on another group must not see the traffic.
        let mut other = ListenArgs::new(Some(Ipv4Addr::new(239, 255, 77, 2)), port);
        other.interface = Some("lo".into());
        other.duration = Some(0.8);
        let h2 = spawn(other, "mcast2");
        let mut g = GenArgs::new(group, port);
        g.interface = Some("127.0.0.1".into());
        g.multicast_loop = true;
        g.count = Some(1000);
        g.rate = 10_000.0;
        g.ttl = Some(3);
        let gs = gen::run(&g).unwrap();
        assert_eq!(gs.sent, 1000);
        let s = h.join().unwrap().unwrap();
        assert_eq!(
            (s.total.received, s.total.lost, s.total.reordered),
            (1000, 0, 0)
        );
        assert_eq!((s.total.ttl_min, s.total.ttl_max), (Some(3), Some(3)));
        let s2 = h2.join().unwrap().unwrap();
        assert_eq!(s2.packets, 0);
    }

    #[test]
    fn detects_loss_dup_reorder_corruption() {
        let port = free_port();
        let mut l = ListenArgs::new(Some(Ipv4Addr::LOCALHOST), port);
        l.count = Some(6);
        l.duration = Some(5.0);
        let h = spawn(l, "acct");
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let pkt = |seq: u64| {
            let mut b = vec![0u8; 64];
            header::encode(&mut b, 1, seq, sys::realtime_ns());
            header::fill(&mut b, 1, seq);
            b
        };
        // 0, 2, 1 (reordered), 1 (dup), 5 (3 and 4 lost), 6 corrupted
        for seq in [0u64, 2, 1, 1, 5] {
            tx.send_to(&pkt(seq), ("127.0.0.1", port)).unwrap();
        }
        let mut bad = pkt(6);
        bad[50] ^= 0xff;
        tx.send_to(&bad, ("127.0.0.1", port)).unwrap();
        let s = h.join().unwrap().unwrap();
        let t = &s.total;
        assert_eq!(
            (t.received, t.lost, t.duplicates, t.reordered, t.corrupted),
            (6, 2, 1, 1, 1)
        );
    }
}
