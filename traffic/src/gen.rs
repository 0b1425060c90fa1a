//! The traffic generator behind `mcrgen`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::ethtool;
use super::header::{self, MAX_PAYLOAD};
use super::sys::{self, Iface};
use mcr_wire::MacAddr;

/// Most packets handed to one `sendmmsg`.
pub const MAX_BATCH: usize = 64;
/// Most packets of one `--gso` batch over several streams: big enough that
/// each stream still gets several datagrams per segmentation send.
pub const MAX_GSO_BATCH: usize = 1024;

/// Sleep instead of spinning when the next send is further away than this.
const SLEEP_THRESHOLD: Duration = Duration::from_micros(50);
/// Wake this much before the deadline and spin the rest (sleep overshoot).
const SLEEP_MARGIN: Duration = Duration::from_micros(20);
/// How long one packet is retried on ENOBUFS before it counts as an error.
const RETRY_LIMIT: Duration = Duration::from_secs(1);

/// Command-line arguments of the generator (embeddable with
/// `#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone)]
pub struct GenArgs {
    /// Outgoing interface: a name (IP_MULTICAST_IF by ifindex and
    /// SO_BINDTODEVICE) or a local IPv4 address (bind to it, IP_MULTICAST_IF).
    #[arg(long, short = 'i')]
    pub interface: Option<String>,
    /// Destination IPv4 address, multicast or unicast.
    #[arg(long, short = 'g')]
    pub group: Ipv4Addr,
    /// Destination UDP port (of the first stream).
    #[arg(long, short = 'p')]
    pub port: u16,
    /// Source UDP port; 0 picks an ephemeral port.
    #[arg(long, default_value_t = 0)]
    pub source_port: u16,
    /// Packets per second over all streams; 0 sends as fast as possible.
    #[arg(long, short = 'r', default_value_t = 0.0)]
    pub rate: f64,
    /// UDP payload size in bytes (1..=65507). Payloads under 24 bytes carry
    /// a truncated header.
    #[arg(long, short = 's', default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=MAX_PAYLOAD as i64))]
    pub size: u32,
    /// Stop after this many packets (over all streams).
    #[arg(long, short = 'c')]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// IP TTL; default 1 for multicast destinations, 64 otherwise.
    #[arg(long)]
    pub ttl: Option<u8>,
    /// Number of streams, sent round-robin to consecutive destination ports
    /// starting at --port; stream i carries stream id base + i.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub streams: u32,
    /// Stream id of the first stream.
    #[arg(long, default_value_t = 0)]
    pub stream_id_base: u32,
    /// Enable IP_MULTICAST_LOOP (off by default).
    #[arg(long = "loop")]
    pub multicast_loop: bool,
    /// Send prebuilt Ethernet frames through an AF_PACKET socket on
    /// --interface (a name), bypassing the kernel's UDP/IP send path.
    /// Multicast destinations only; no fragmentation (size + 28 must fit the
    /// MTU); UDP checksum 0; IP id 0 with DF; source address is the
    /// interface's IPv4 address. Needs CAP_NET_RAW.
    #[arg(long, conflicts_with = "gso")]
    pub af_packet: bool,
    /// Hand the kernel each batch's datagrams to one destination as a single
    /// UDP segmentation send (UDP_SEGMENT): the socket and route work is paid
    /// once per batch instead of once per packet (about twice the rate of
    /// either other path). Needs --interface and size + 28 within the MTU.
    /// The kernel must cut the batch into datagrams before the device, so
    /// mcrgen turns `tx-udp-segmentation` off on the interface if it is on
    /// (needs CAP_NET_ADMIN; it says so on stderr).
    ///
    /// The default when it applies (an --interface, a payload within its
    /// MTU, the feature off or switchable): mcrgen says on stderr which
    /// mode runs. --gso makes a failure to use it an error.
    #[arg(long)]
    pub gso: bool,
    /// One datagram per message (`sendmmsg`) instead of the default
    /// UDP segmentation sends.
    #[arg(long, conflicts_with_all = ["gso", "af_packet"])]
    pub no_gso: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl GenArgs {
    /// Arguments with every default, for use from code.
    pub fn new(group: Ipv4Addr, port: u16) -> Self {
        GenArgs {
            interface: None,
            group,
            port,
            source_port: 0,
            rate: 0.0,
            size: 64,
            count: None,
            duration: None,
            ttl: None,
            streams: 1,
            stream_id_base: 0,
            multicast_loop: false,
            af_packet: false,
            gso: false,
            no_gso: false,
            json: false,
        }
    }
}

/// What the generator did.
#[derive(Debug, Clone, Serialize)]
pub struct GenSummary {
    /// Packets the kernel accepted.
    pub sent: u64,
    /// Payload bytes of those packets.
    pub bytes: u64,
    /// Packets whose send failed; each consumed its sequence number, so the
    /// receiver sees it as lost.
    pub errors: u64,
    /// Sends retried after ENOBUFS (full device queue) or an ICMP error
    /// report; the packet went out on a later try (or counts in `errors`).
    pub retried: u64,
    /// First send error, if any.
    pub first_error: Option<String>,
    /// From the first send to the end of the run.
    pub elapsed_secs: f64,
    /// sent / elapsed_secs.
    pub achieved_pps: f64,
    /// Local address the packets were sent from.
    pub source: String,
}

impl GenSummary {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "sent {} packets ({} bytes) from {} in {:.3} s: {:.0} pps, {} errors, {} retries",
            self.sent,
            self.bytes,
            self.source,
            self.elapsed_secs,
            self.achieved_pps,
            self.errors,
            self.retried
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!(" (first: {e})"));
        }
        s
    }

    /// Print to stdout, as JSON or text.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).expect("serializable"));
        } else {
            println!("{}", self.to_text());
        }
    }
}

fn open_socket(args: &GenArgs) -> anyhow::Result<OwnedFd> {
    let fd = sys::udp_socket()?;
    let multicast = args.group.is_multicast();
    let mut bind_ip = Ipv4Addr::UNSPECIFIED;
    match args.interface.as_deref().map(Iface::parse) {
        None => {}
        Some(Iface::Addr(a)) => {
            bind_ip = a;
            let m = libc::ip_mreqn {
                imr_multiaddr: sys::in_addr(Ipv4Addr::UNSPECIFIED),
                imr_address: sys::in_addr(a),
                imr_ifindex: 0,
            };
            if multicast {
                sys::setsockopt(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &m)
                    .with_context(|| format!("IP_MULTICAST_IF {a}"))?;
            }
        }
        Some(Iface::Name(n)) => {
            let idx = sys::ifindex(&n)?;
            let m = libc::ip_mreqn {
                imr_multiaddr: sys::in_addr(Ipv4Addr::UNSPECIFIED),
                imr_address: sys::in_addr(Ipv4Addr::UNSPECIFIED),
                imr_ifindex: idx as i32,
            };
            if multicast {
                sys::setsockopt(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &m)
                    .with_context(|| format!("IP_MULTICAST_IF {n}"))?;
            }
            sys::bind_to_device(fd.as_raw_fd(), &n)
                .with_context(|| format!("SO_BINDTODEVICE {n} (needs CAP_NET_RAW)"))?;
        }
    }
    sys::bind(&fd, SocketAddrV4::new(bind_ip, args.source_port))?;
    let ttl = args.ttl.unwrap_or(if multicast { 1 } else { 64 }) as i32;
    if multicast {
        sys::setsockopt_int(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_TTL,
            ttl,
        )
        .context("IP_MULTICAST_TTL")?;
        sys::setsockopt_int(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_LOOP,
            args.multicast_loop as i32,
        )
        .context("IP_MULTICAST_LOOP")?;
    } else {
        sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_TTL, ttl)
            .context("IP_TTL")?;
        // Lets a broadcast destination work; harmless otherwise.
        let _ = sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_BROADCAST, 1);
    }
    // Report a full qdisc as ENOBUFS instead of dropping silently, so the
    // packet can be sent again.
    sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_RECVERR, 1)
        .context("IP_RECVERR")?;
    Ok(fd)
}

/// Length of the Ethernet + IPv4 + UDP headers of an `--af-packet` frame.
const FRAME_HDR: usize = mcr_dataplane::tx::HEADER_LEN;

/// Ethernet + IPv4 + UDP headers for an `--af-packet` frame (UDP checksum
/// 0): the engine's transmit-path builder, so both write the same bytes.
fn frame_header(
    src_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ttl: u8,
    size: usize,
) -> [u8; FRAME_HDR] {
    let mut f = [0u8; FRAME_HDR];
    mcr_dataplane::tx::emit_headers(
        &mut f,
        MacAddr(src_mac),
        MacAddr::from_ipv4_multicast(*dst.ip()),
        src,
        dst,
        ttl,
        size,
    );
    f
}

struct PacketSender {
    fd: OwnedFd,
    ll: libc::sockaddr_ll,
    header: [u8; FRAME_HDR],
    source: SocketAddrV4,
}

fn open_packet(args: &GenArgs) -> anyhow::Result<PacketSender> {
    let name = match args.interface.as_deref().map(Iface::parse) {
        Some(Iface::Name(n)) => n,
        _ => bail!("--af-packet needs --interface NAME"),
    };
    if !args.group.is_multicast() {
        bail!("--af-packet sends to multicast groups only (no ARP for unicast)");
    }
    let info = sys::iface_info(&name)?;
    if args.size as usize + 28 > info.mtu as usize {
        bail!(
            "--size {} does not fit the MTU {} of {name} without fragmentation",
            args.size,
            info.mtu
        );
    }
    let Some(src_ip) = info.addr else {
        bail!("{name} has no IPv4 address to send from");
    };
    let sport = if args.source_port != 0 {
        args.source_port
    } else {
        // No socket owns this port; pick one in the ephemeral range.
        49152 + ((sys::realtime_ns() ^ std::process::id() as u64) % 16384) as u16
    };
    let source = SocketAddrV4::new(src_ip, sport);
    let ttl = args.ttl.unwrap_or(1);
    let header = frame_header(
        info.mac,
        source,
        SocketAddrV4::new(args.group, args.port),
        ttl,
        args.size as usize,
    );
    // Protocol 0: this socket receives nothing.
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error())
            .context("socket(AF_PACKET) (needs CAP_NET_RAW)");
    }
    // SAFETY: raw is a fresh, valid descriptor.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // Hand frames straight to the driver, past the qdisc layer (a load
    // generator has no use for queueing disciplines); optional.
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live c_int of the size passed.
    unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    // SAFETY: zero is a valid sockaddr_ll.
    let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    ll.sll_ifindex = info.index as i32;
    ll.sll_halen = 6;
    ll.sll_addr[..6].copy_from_slice(&header[0..6]);
    Ok(PacketSender {
        fd,
        ll,
        header,
        source,
    })
}

/// Sets the socket up for `--gso` and returns the most datagrams one send
/// may carry.
/// Sets a socket up for UDP segmentation sends. The interface must not
/// segment UDP in hardware or in the driver (receivers would see 64 KiB
/// super-packets): with `may_reconfigure` (an explicit `--gso`) mcrgen
/// turns that offload off and says so; without (the default mode), such an
/// interface is an error, so a plain run never changes a NIC's settings.
fn prepare_gso(args: &GenArgs, fd: &OwnedFd, may_reconfigure: bool) -> anyhow::Result<usize> {
    let ifname = match args.interface.as_deref().map(Iface::parse) {
        None => bail!("--gso needs --interface (a name or one of its IPv4 addresses)"),
        Some(Iface::Name(n)) => n,
        Some(Iface::Addr(a)) => nix::ifaddrs::getifaddrs()
            .context("listing interfaces")?
            .find(|i| {
                i.address
                    .and_then(|s| s.as_sockaddr_in().map(|v| v.ip() == a))
                    .unwrap_or(false)
            })
            .map(|i| i.interface_name)
            .with_context(|| format!("no interface has the address {a}"))?,
    };
    let info = sys::iface_info(&ifname)?;
    if args.size as usize + 28 > info.mtu as usize {
        bail!(
            "--gso: a {}-byte payload does not fit {ifname}'s MTU of {} in one datagram; use a size up to {} or drop --gso",
            args.size,
            info.mtu,
            info.mtu.saturating_sub(28)
        );
    }
    let feature = ethtool::UDP_SEGMENTATION;
    let active = ethtool::feature_active(fd, &ifname, feature)
        .with_context(|| format!("reading the offload features of {ifname}"))?;
    if active && !may_reconfigure {
        bail!("{ifname} has {feature} on; pass --gso to let mcrgen turn it off (it stays off), or turn it off yourself: ethtool -K {ifname} {feature} off");
    }
    if active {
        ethtool::disable_feature(fd, &ifname, feature).with_context(|| {
            format!("--gso: {ifname} offloads UDP segmentation, so receivers would see 64 KiB super-packets; turning {feature} off failed (needs CAP_NET_ADMIN; or run `ethtool -K {ifname} {feature} off` first)")
        })?;
        if ethtool::feature_active(fd, &ifname, feature)? {
            bail!("--gso: {ifname} keeps {feature} on; run without --gso");
        }
        eprintln!(
            "mcrgen: turned {feature} off on {ifname} so the kernel sends single datagrams (--gso)"
        );
    }
    sys::setsockopt_int(
        fd.as_raw_fd(),
        libc::SOL_UDP,
        libc::UDP_SEGMENT,
        args.size as i32,
    )
    .context("UDP_SEGMENT")?;
    Ok(MAX_BATCH.min(65_507 / args.size as usize).max(1))
}

/// Batch size for a target rate: about 50 µs of packets, so pacing stays
/// smooth at low rates (one packet per send below 20 kpps).
pub fn batch_for_rate(rate: f64) -> usize {
    if rate <= 0.0 {
        MAX_BATCH
    } else {
        ((rate * 50e-6).round() as usize).clamp(1, MAX_BATCH)
    }
}

/// Run the generator to completion (count, duration, or SIGINT/SIGTERM).
pub fn run(args: &GenArgs) -> anyhow::Result<GenSummary> {
    let mut args = args.clone();
    let args = &mut args;
    if args.port == 0 {
        bail!("--port must not be 0");
    }
    if args.port as u64 + args.streams as u64 - 1 > u16::MAX as u64 {
        bail!(
            "--port {} + --streams {} runs past port 65535",
            args.port,
            args.streams
        );
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a non-negative number");
    }
    if let Some(d) = args.duration {
        if !(d >= 0.0 && d.is_finite()) {
            bail!("--duration must be a non-negative number of seconds");
        }
    }
    let size = args.size as usize;
    if size == 0 || size > MAX_PAYLOAD {
        bail!("--size must be within 1..={MAX_PAYLOAD}");
    }
    let packet = if args.af_packet {
        Some(open_packet(args)?)
    } else {
        None
    };
    let fd = match &packet {
        Some(p) => p.fd.try_clone()?,
        None => open_socket(args)?,
    };
    // The fastest mode that keeps single datagrams on the wire is the
    // default: UDP segmentation sends, unless asked otherwise or it cannot
    // apply here.
    let max_segs = if args.gso {
        prepare_gso(args, &fd, true)?
    } else if !args.no_gso && packet.is_none() {
        match prepare_gso(args, &fd, false) {
            Ok(n) => {
                args.gso = true;
                n
            }
            Err(e) => {
                eprintln!("mcrgen: UDP segmentation (--gso) not used: {e:#}");
                1
            }
        }
    } else {
        1
    };
    let args: &GenArgs = args;
    eprintln!(
        "mcrgen: mode {}",
        if packet.is_some() {
            "af-packet (prebuilt frames on an AF_PACKET socket)".to_string()
        } else if args.gso {
            format!("gso (UDP_SEGMENT sends of up to {max_segs} datagrams, cut into single datagrams by the kernel)")
        } else {
            "sendmmsg (one datagram per message)".to_string()
        }
    );
    sys::stop_flag();
    // Finer sleeps for pacing (default slack is 50 µs).
    // SAFETY: prctl with integer arguments only affects this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };

    let nstreams = args.streams as u64;
    let dests: Vec<libc::sockaddr_in> = (0..args.streams)
        .map(|i| sys::sockaddr_in(SocketAddrV4::new(args.group, args.port + i as u16)))
        .collect();
    // Each slot holds one datagram: the prebuilt frame headers (AF_PACKET)
    // then the UDP payload at offset `hdr`.
    let hdr = if packet.is_some() { FRAME_HDR } else { 0 };
    let slot = hdr + size;
    // With --gso and several streams a batch spans them all (each stream's
    // share goes out as one segmentation send), so it is up to
    // MAX_GSO_BATCH packets; otherwise MAX_BATCH.
    let cap = if args.gso && nstreams > 1 {
        (MAX_BATCH * nstreams as usize).min(MAX_GSO_BATCH)
    } else {
        MAX_BATCH
    };
    let mut bufs = vec![0u8; slot * cap];
    // SAFETY: iovec/mmsghdr are plain C structs; zero is a valid value.
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; cap];
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; cap];
    for j in 0..cap {
        iovs[j].iov_base = bufs[j * slot..].as_mut_ptr() as *mut libc::c_void;
        iovs[j].iov_len = slot;
        msgs[j].msg_hdr.msg_iov = &mut iovs[j];
        msgs[j].msg_hdr.msg_iovlen = 1;
        msgs[j].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if let Some(p) = &packet {
            msgs[j].msg_hdr.msg_name = &p.ll as *const libc::sockaddr_ll as *mut libc::c_void;
            msgs[j].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        }
    }
    // --gso: packet position -> batch index, and datagrams per message.
    let mut order = vec![0usize; cap];
    let mut msg_segs = vec![1usize; cap];
    if let Some(p) = &packet {
        for chunk in bufs.chunks_mut(slot) {
            chunk[..FRAME_HDR].copy_from_slice(&p.header);
        }
    }

    // A single multicast stream goes through a connected socket: the kernel
    // then keeps the route instead of building one per packet (5-10% of the
    // send cost into a veth). Unicast stays unconnected so that ICMP errors
    // are not tied to the socket's state.
    let connected = packet.is_none() && nstreams == 1 && args.group.is_multicast();
    if connected {
        sys::connect(&fd, SocketAddrV4::new(args.group, args.port))?;
        for m in &mut msgs {
            m.msg_hdr.msg_name = std::ptr::null_mut();
            m.msg_hdr.msg_namelen = 0;
        }
    }
    let rate = args.rate;
    let batch_max = if cap > MAX_BATCH {
        (batch_for_rate(rate) * nstreams as usize).min(cap)
    } else {
        batch_for_rate(rate)
    };
    // Most packets we may fall behind the schedule before forgiving the debt.
    let depth = ((rate * 0.01) as u64).max(1024);
    let limit = args.count.unwrap_or(u64::MAX);
    let duration = args.duration.map(Duration::from_secs_f64);

    let mut sent = 0u64;
    let mut errors = 0u64;
    let mut retried = 0u64;
    let mut first_error = None;
    let mut next_k = 0u64; // packets attempted, over all streams
    let t0 = Instant::now();
    let end = duration.map(|d| t0 + d);
    let mut sched_base = t0; // packet sched_k0 + j is due at sched_base + j / rate
    let mut sched_k0 = 0u64;

    'outer: while next_k < limit {
        if sys::stop_requested() {
            break;
        }
        let mut now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        let mut n = batch_max.min((limit - next_k).min(cap as u64) as usize);
        if rate > 0.0 {
            let due_at = |k: u64, base: Instant, k0: u64| {
                base + Duration::from_secs_f64((k - k0) as f64 / rate)
            };
            let last = next_k + n as u64 - 1;
            let t_last = due_at(last, sched_base, sched_k0);
            if let Some(e) = end {
                if due_at(next_k, sched_base, sched_k0) >= e {
                    // Nothing more fits in the duration: wait it out.
                    while Instant::now() < e && !sys::stop_requested() {
                        std::thread::sleep((e - Instant::now()).min(Duration::from_millis(50)));
                    }
                    break;
                }
            }
            if t_last > now {
                let wait = t_last - now;
                if wait > SLEEP_THRESHOLD {
                    std::thread::sleep((wait - SLEEP_MARGIN).min(Duration::from_millis(50)));
                    continue;
                }
                while Instant::now() < t_last {
                    std::hint::spin_loop();
                }
                now = Instant::now();
            }
            // Behind schedule: catch up in bigger batches, within `depth`.
            let elapsed = now.saturating_duration_since(sched_base).as_secs_f64();
            let due = sched_k0 + (elapsed * rate) as u64 + 1;
            if due > next_k + depth {
                sched_base = now;
                sched_k0 = next_k;
            } else if due > next_k + n as u64 {
                n = ((due - next_k).min(cap as u64).min(limit - next_k)) as usize;
            }
            if let Some(e) = end {
                // Do not send packets scheduled past the end.
                while n > 1 && due_at(next_k + n as u64 - 1, sched_base, sched_k0) >= e {
                    n -= 1;
                }
            }
        }

        let ts = sys::realtime_ns();
        // With --gso each stream's packets of the batch sit side by side
        // (stream order within a batch does not matter; sequence order per
        // stream is kept) and go out as one message per `max_segs`.
        let mut nmsgs = 0;
        let mut pos = 0;
        if args.gso {
            for first in 0..(nstreams as usize).min(n) {
                let s = ((next_k + first as u64) % nstreams) as usize;
                let mut j = first;
                while j < n {
                    let start = pos;
                    let mut segs = 0;
                    while j < n && segs < max_segs {
                        order[pos] = j;
                        pos += 1;
                        segs += 1;
                        j += nstreams as usize;
                    }
                    iovs[nmsgs].iov_base = bufs[start * slot..].as_mut_ptr() as *mut libc::c_void;
                    iovs[nmsgs].iov_len = segs * slot;
                    msg_segs[nmsgs] = segs;
                    if !connected {
                        msgs[nmsgs].msg_hdr.msg_name =
                            &dests[s] as *const libc::sockaddr_in as *mut libc::c_void;
                    }
                    nmsgs += 1;
                }
            }
        } else {
            nmsgs = n;
        }
        for p in 0..n {
            let j = if args.gso { order[p] } else { p };
            let k = next_k + j as u64;
            let (s, seq) = if nstreams == 1 {
                (0, k)
            } else {
                (k % nstreams, k / nstreams)
            };
            let stream = args.stream_id_base.wrapping_add(s as u32);
            let frame = &mut bufs[p * slot..(p + 1) * slot];
            let buf = &mut frame[hdr..];
            header::encode(buf, stream, seq, ts);
            header::fill(buf, stream, seq);
            if packet.is_some() {
                if nstreams > 1 {
                    frame[36..38].copy_from_slice(&(args.port + s as u16).to_be_bytes());
                }
            } else if !connected && !args.gso {
                msgs[p].msg_hdr.msg_name =
                    &dests[s as usize] as *const libc::sockaddr_in as *mut libc::c_void;
            }
        }
        let mut off = 0;
        let mut retry_since: Option<Instant> = None;
        while off < nmsgs {
            // SAFETY: msgs[off..nmsgs] point into live buffers, iovecs and
            // dests.
            let rc = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    msgs.as_mut_ptr().add(off),
                    (nmsgs - off) as libc::c_uint,
                    0,
                )
            };
            if rc >= 0 {
                retry_since = None;
                sent += msg_segs[off..off + rc as usize].iter().sum::<usize>() as u64;
                off += rc as usize;
                continue;
            }
            let e = std::io::Error::last_os_error();
            let code = e.raw_os_error().unwrap_or(0);
            if code == libc::EINTR {
                if sys::stop_requested() {
                    break 'outer;
                }
                continue;
            }
            if matches!(code, libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED) {
                // Queue full (reported thanks to IP_RECVERR), or an ICMP
                // error about an earlier packet: this packet was not sent;
                // send it again rather than lose it.
                sys::drain_errqueue(&fd);
                let since = *retry_since.get_or_insert_with(Instant::now);
                if since.elapsed() < RETRY_LIMIT && !sys::stop_requested() {
                    retried += 1;
                    if code != libc::ECONNREFUSED {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                    continue;
                }
            }
            retry_since = None;
            errors += msg_segs[off] as u64;
            if first_error.is_none() {
                first_error = Some(e.to_string());
            }
            off += 1;
        }
        next_k += n as u64;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    Ok(GenSummary {
        sent,
        bytes: sent * size as u64,
        errors,
        retried,
        first_error,
        elapsed_secs: elapsed,
        achieved_pps: if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        },
        source: match &packet {
            Some(p) => p.source.to_string(),
            None => sys::local_addr(&fd)
                .map(|a| a.to_string())
                .unwrap_or_default(),
        },
    })
}

/// Run and print the summary; what `mcrgen` does.
pub fn main(args: &GenArgs) -> anyhow::Result<GenSummary> {
    let s = run(args)?;
    s.print(args.json);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn frame_headers() {
        let f = frame_header(
            [2, 0, 0, 0, 0, 1],
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000),
            SocketAddrV4::new(Ipv4Addr::new(239, 1, 1, 1), 5000),
            7,
            64,
        );
        assert!(
            mcr_wire::checksum::verify(&f[14..34]),
            "valid IPv4 header checksum"
        );
        assert_eq!(&f[0..6], &[1, 0, 0x5e, 1, 1, 1]);
        assert_eq!(&f[16..18], &92u16.to_be_bytes());
        assert_eq!(f[22], 7);
        assert_eq!(&f[36..38], &5000u16.to_be_bytes());
        assert_eq!(&f[38..40], &72u16.to_be_bytes());
        let mut a = GenArgs::new(Ipv4Addr::LOCALHOST, 5000);
        a.af_packet = true;
        a.interface = Some("lo".into());
        assert!(run(&a).is_err(), "unicast refused");
    }

    #[test]
    fn batch_sizes() {
        assert_eq!(batch_for_rate(0.0), MAX_BATCH);
        assert_eq!(batch_for_rate(1000.0), 1);
        assert_eq!(batch_for_rate(100_000.0), 5);
        assert_eq!(batch_for_rate(10_000_000.0), MAX_BATCH);
    }

    #[test]
    fn rejects_bad_args() {
        let mut a = GenArgs::new(Ipv4Addr::LOCALHOST, 0);
        assert!(run(&a).is_err());
        a.port = 65535;
        a.streams = 2;
        assert!(run(&a).is_err());
    }

    #[test]
    fn sends_exact_payloads_round_robin() {
        let rx0 = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Need two consecutive ports: bind the second next to the first.
        let p0 = rx0.local_addr().unwrap().port();
        let rx1 = match UdpSocket::bind(("127.0.0.1", p0 + 1)) {
            Ok(s) => s,
            Err(_) => return, // port taken; nothing to test reliably
        };
        let mut a = GenArgs::new(Ipv4Addr::LOCALHOST, p0);
        a.count = Some(10);
        a.streams = 2;
        a.stream_id_base = 5;
        a.size = 100;
        let s = run(&a).unwrap();
        assert_eq!((s.sent, s.errors, s.bytes), (10, 0, 1000));
        for (sock, stream) in [(&rx0, 5u32), (&rx1, 6u32)] {
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 200];
            for seq in 0..5u64 {
                let n = sock.recv(&mut buf).unwrap();
                assert_eq!(n, 100);
                let h = header::decode(&buf[..n]).unwrap();
                assert_eq!((h.stream_id, h.seq), (stream, seq));
                assert!(header::verify(&buf[..n]));
            }
        }
    }

    #[test]
    fn tiny_payload() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut a = GenArgs::new(Ipv4Addr::LOCALHOST, rx.local_addr().unwrap().port());
        a.count = Some(3);
        a.size = 1;
        let s = run(&a).unwrap();
        assert_eq!(s.sent, 3);
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(rx.recv(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'M');
    }

    #[test]
    fn pacing_low_rate() {
        // Nothing listens: loopback UDP to a closed port does not fail an
        // unconnected sender.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        drop(rx);
        let mut a = GenArgs::new(Ipv4Addr::LOCALHOST, port);
        a.rate = 2000.0;
        a.duration = Some(1.0);
        let s = run(&a).unwrap();
        assert_eq!(s.errors, 0);
        assert!((s.sent as f64 - 2000.0).abs() <= 40.0, "sent {}", s.sent);
        assert!(
            (s.achieved_pps / 2000.0 - 1.0).abs() < 0.02,
            "{}",
            s.achieved_pps
        );
        assert!((s.elapsed_secs - 1.0).abs() < 0.02, "{}", s.elapsed_secs);
    }
}
