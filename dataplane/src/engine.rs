//! One packet engine: pinned to a core, owning its io_uring, its capture
//! sockets, its output sockets, its buffers and its counters.
//!
//! Where a packet goes:
//! 1. **enters**: a multishot receive on the engine's `AF_PACKET` socket for
//!    the input interface completes into a provided buffer ([`Engine::run`]);
//! 2. **is matched**: [`Engine::forward`] parses Ethernet/IPv4/UDP in place
//!    and looks the (interface, group, port, source) up in the table;
//! 3. **leaves**: one send per output, each pointing at the same payload
//!    bytes in the receive buffer (no copy per output): a multicast output
//!    goes out as a prebuilt Ethernet/IPv4/UDP frame on the output
//!    interface's `AF_PACKET` socket ([`crate::tx`]), anything else through
//!    a UDP socket. The buffer returns to the kernel when its last send
//!    completes.

use crate::bufring::BufRing;
use crate::input::{self, Endpoints, LinkKind, Meta, Reject, UdpChecksum};
use crate::socket::{dest_addr, CaptureSocket, EgressKey, OutputSocket, CONNECTED_OUTPUTS};
use crate::stats::{
    Drops, EngineStats, OutputStats, RuleStats, RuleStatsList, StatsHandle, PUBLISH_INTERVAL,
};
use crate::table::{DeltaStep, ForwardingTable, OutputSlot, TableHandle};
use crate::tx::{BatchArena, PacketRoute, PacketTxSocket, TxArena, MAX_SEGMENTS};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use rustc_hash::FxHashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sizing of one engine.
#[derive(Debug, Clone)]
pub struct EngineParams {
    /// Receive buffers (a power of two).
    pub buffers: u16,
    /// Bytes per buffer: the largest frame taken whole (jumbo 9000 MTU plus
    /// Ethernet and VLAN headers fits the default).
    pub buf_size: usize,
    pub sq_entries: u32,
    /// How long an idle engine with nothing left to publish sleeps before
    /// it looks at its table and stop flag again. A new table or a stop
    /// request wakes it at once (its eventfd), so this is only a safety
    /// net; each wake-up of an idle engine costs CPU, 50 instances times
    /// their engines times this rate. While counts wait to be published it
    /// sleeps no later than their publication is due.
    pub idle_wait: Duration,
    /// Send multicast outputs as prebuilt frames on `AF_PACKET` (see
    /// [`crate::tx`]); `MCR_EGRESS=udp` in the environment turns it off.
    pub packet_tx: bool,
    /// Send consecutive datagrams of one flow read from a receive ring to
    /// one output as one UDP GSO frame (see [`crate::tx::Batch`]), and to
    /// which outputs; `MCR_BATCH` in the environment overrides it.
    pub batch_sends: BatchSends,
}

/// Which outputs the engines send batches to ([`EngineParams::batch_sends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSends {
    /// One send per datagram (`MCR_BATCH=0`).
    Off,
    /// Only to outputs whose device cuts a batch into frames before anyone
    /// else sees it ([`crate::ethtool::batches_leave_cut`]): the default.
    CutOutputs,
    /// To every output, whatever its device does with a batch
    /// (`MCR_BATCH=every`). For benchmarks only: it stands in for a NIC
    /// with UDP segmentation offload on a veth, which then passes each
    /// batch on whole, as one frame of up to 64 KiB that a router
    /// downstream drops (see docs/configuration.md).
    Every,
}

impl BatchSends {
    /// The setting `MCR_BATCH` asks for: `0` off, `every` to every output,
    /// unset the default. Anything but the default is logged once as a
    /// warning, and so is a value it does not know (which means the
    /// default).
    pub fn from_env() -> Self {
        let value = std::env::var("MCR_BATCH").ok();
        let sends = match value.as_deref() {
            None => BatchSends::CutOutputs,
            Some("0") => BatchSends::Off,
            Some("every") => BatchSends::Every,
            Some(_) => BatchSends::CutOutputs,
        };
        static SAID: std::sync::Once = std::sync::Once::new();
        if let Some(v) = value {
            SAID.call_once(|| match sends {
                BatchSends::Every => tracing::warn!(
                    "MCR_BATCH=every: batches go to every output, also to virtual devices that pass them on whole (for benchmarks only)"
                ),
                BatchSends::Off => tracing::warn!("MCR_BATCH=0: one send per datagram"),
                BatchSends::CutOutputs => tracing::warn!(
                    value = %v,
                    "MCR_BATCH is neither 0 nor every: batching as by default"
                ),
            });
        }
        sends
    }
}

impl Default for EngineParams {
    fn default() -> Self {
        EngineParams {
            buffers: 1024,
            buf_size: 9216,
            sq_entries: 1024,
            idle_wait: Duration::from_secs(1),
            packet_tx: std::env::var("MCR_EGRESS").map_or(true, |v| v != "udp"),
            batch_sends: BatchSends::from_env(),
        }
    }
}

// user_data layout. Receive: RECV | input slot. Send: SEND (bit 63) |
// PACKET (62) | table tag (8 bits, 54-61) | rule index (22 bits, 32-53:
// up to 4,194,302 rules) | output position (16) | buffer id (16). Bit 62
// marks a send on the prebuilt-header path (for receives it means CANCEL).
const SEND: u64 = 1 << 63;
const PACKET: u64 = 1 << 62;
const TAG_MASK: u64 = 0xff;
const TAG_SHIFT: u32 = 54;
const RULE_MASK: u64 = (1 << 22) - 1;
const OUT_MASK: u64 = 0xffff;
const CANCEL: u64 = 1 << 62;
const WAKE: u64 = 1 << 61;

fn send_data(tag: u64, rule: usize, out: usize, bid: u16) -> u64 {
    // All ones means "no attribution" (an index past the field).
    let rule = (rule as u64).min(RULE_MASK);
    let out = (out as u64).min(OUT_MASK);
    SEND | ((tag & TAG_MASK) << TAG_SHIFT) | (rule << 32) | (out << 16) | u64::from(bid)
}

/// (tag, rule, output position, buffer) of a send's user data; rule or
/// output None when the index did not fit its field.
fn send_fields(data: u64) -> (u64, Option<usize>, Option<usize>, u16) {
    let rule = (data >> 32) & RULE_MASK;
    let out = (data >> 16) & OUT_MASK;
    (
        (data >> TAG_SHIFT) & TAG_MASK,
        (rule != RULE_MASK).then_some(rule as usize),
        (out != OUT_MASK).then_some(out as usize),
        (data & 0xffff) as u16,
    )
}

/// Where the payload of the frame being forwarded lies, and what its
/// relayed copies need from the input's headers.
#[derive(Clone, Copy)]
struct Payload {
    ptr: *const u8,
    len: usize,
    from: Endpoints,
    checksum: UdpChecksum,
    ttl: u8,
}

/// One received frame being forwarded: its bytes (from the link header,
/// or the network header on an L3 link), what the kernel said of it, and
/// what holds it: receive buffer `bid`, or a ring slot ([`RING_BID`]).
#[derive(Clone, Copy)]
struct Received {
    ptr: *mut u8,
    len: usize,
    meta: Meta,
    /// The transport checksum is still the sender's offload seed
    /// (`TP_STATUS_CSUMNOTREADY`).
    csum_not_ready: bool,
    bid: u16,
}

/// What a multishot `RecvMsg` puts before each frame in its buffer: the
/// `io_uring_recvmsg_out` header, the sender's `sockaddr_ll` and room for
/// one `PACKET_AUXDATA` control message.
const RECV_NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_ll>();
const AUXDATA_LEN: usize = std::mem::size_of::<libc::tpacket_auxdata>();
/// CMSG_SPACE(sizeof(struct tpacket_auxdata)).
const RECV_CONTROL_LEN: usize = (std::mem::size_of::<libc::cmsghdr>() + AUXDATA_LEN + 7) & !7;
pub const RECV_HEADROOM: usize = 16 + RECV_NAME_LEN + RECV_CONTROL_LEN;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// The frame's transport checksum is left to offload (`CHECKSUM_PARTIAL`):
/// its field holds only the pseudo-header seed.
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

struct InputSlot {
    sock: Arc<CaptureSocket>,
    armed: bool,
    closing: bool,
    /// Ring slots read and forwarded, handed back to the kernel once the
    /// submission queue is empty (the sends reading them taken).
    release: Vec<u32>,
}

/// The "buffer id" of a frame read from a receive ring: not a buffer of the
/// provided-buffer ring, nothing to recycle.
const RING_BID: u16 = ring_holder(1);
/// The bit that marks a send's "buffer id" as ring frames; the bits
/// below count the datagrams the send carries (see [`ring_holder`]).
const RING: u16 = 0x8000;

/// The "buffer id" of a send of `segments` datagrams read from a ring
/// (buffer ids are below 0x8000: at most 32,768 buffers).
const fn ring_holder(segments: usize) -> u16 {
    RING | segments as u16
}

/// Datagrams the send holding `bid` carries: a batched send from a ring
/// carries several, any other one.
fn segments_of(bid: u16) -> u64 {
    if bid & RING != 0 {
        u64::from(bid & !RING)
    } else {
        1
    }
}

/// An output's batch being filled while the engine reads a ring (see
/// [`crate::tx::Batch`]): what every datagram in it shares.
#[derive(Clone, Copy)]
struct OpenBatch {
    /// Its storage in the batch arena.
    at: usize,
    rule_idx: usize,
    pos: usize,
    /// The output slot (index in `table.output_slots()`).
    slot: usize,
    src_port: u16,
    ttl: u8,
    seg_len: usize,
    /// The first datagram's relayed checksum, for a batch of one (0 for
    /// an offload seed, as when sent alone).
    checksum: u16,
    /// Datagrams it may take: [`MAX_SEGMENTS`], fewer for large ones.
    limit: usize,
}

/// Batched sends open at once (each a few KiB of iovecs).
const BATCH_ARENA: usize = 64;
/// Frames taken from one ring per pass.
const RING_BUDGET: usize = 256;

#[derive(Default, Clone)]
struct OutCounters {
    packets: u64,
    bytes: u64,
    full: u64,
    errors: u64,
}

#[derive(Default, Clone)]
struct RuleCounters {
    packets: u64,
    bytes: u64,
    outputs: Vec<OutCounters>,
    /// Counts of outputs the table lacks for now (their interface is
    /// gone), by label, kept until they return.
    parked: Vec<(String, OutCounters)>,
}

/// A rule's counts while it is out of the table, by output label.
#[derive(Default, Clone)]
struct Kept {
    packets: u64,
    bytes: u64,
    outputs: Vec<(String, OutCounters)>,
}

pub struct Engine {
    // Field order matters: the ring is dropped (and its buffer ring
    // unregistered) before the buffers' memory is unmapped.
    ring: IoUring,
    bufs: BufRing,
    /// Sends still reading each buffer.
    pending: Vec<u16>,
    inputs: Vec<Option<InputSlot>>,
    input_of_if: FxHashMap<u32, usize>,
    /// Egress sockets shared by every output with the same key (used past
    /// CONNECTED_OUTPUTS outputs).
    egress: FxHashMap<EgressKey, OutputSocket>,
    /// Connected egress sockets, one per output.
    connected: FxHashMap<OutputSlot, OutputSocket>,
    /// Indexed like `table.output_slots()`: the socket of each output and,
    /// for a shared socket, the destination to name (None when its socket
    /// could not be opened).
    outputs: Vec<Option<(i32, Option<libc::sockaddr_in>)>>,
    /// Indexed like `outputs`: the prebuilt-header route of multicast
    /// outputs, when that path is on and the interface's details are known.
    routes: Vec<Option<PacketRoute>>,
    /// One transmit socket per output interface for those routes.
    packet_tx: FxHashMap<u32, PacketTxSocket>,
    arena: TxArena,
    /// Batched sends of ring frames, and the ones being filled (their
    /// index by output slot in `open_of_slot`, `u32::MAX` for none).
    gso: BatchArena,
    open_batches: Vec<OpenBatch>,
    open_of_slot: Vec<u32>,
    /// The `msghdr` every multishot receive is armed with: only its name
    /// and control lengths matter (they lay out each buffer).
    recv_msg: Box<libc::msghdr>,
    table: Arc<ForwardingTable>,
    counters: Vec<RuleCounters>,
    /// The last snapshot's rule counts, by chunk of STATS_CHUNK rules, and
    /// which chunks counted something since (rebuilt at the next one).
    snapshot: Vec<Arc<Vec<RuleStats>>>,
    dirty: Vec<bool>,
    /// The dormant rules' counts as last published (they change only at
    /// an install).
    retired_snapshot: Option<Arc<Vec<RuleStats>>>,
    /// Counts of dormant rules (see `install`).
    retired: FxHashMap<String, Kept>,
    drops: Drops,
    frames: u64,
    batches: u64,
    /// Batched sends of two or more datagrams made, and their datagrams.
    batched_sends: u64,
    batched_datagrams: u64,
    index: usize,
    cpu: usize,
    handle: TableHandle,
    stats: StatsHandle,
    stop: Arc<AtomicBool>,
    params: EngineParams,
    /// Written by the control plane after it publishes a table or asks us
    /// to stop, so an idle engine reacts at once instead of at its next
    /// timeout. A read on it is always pending in the ring.
    wake: Arc<OwnedFd>,
    wake_buf: Box<[u8; 8]>,
    wake_armed: bool,
    /// Reused for each pass over the completion queue (no allocation per
    /// batch).
    completions: Vec<cqueue::Entry>,
    /// Receive completions reaped while the completion queue was full, to
    /// be forwarded in order by the next `drain` (bounded by the buffer
    /// count: each holds a receive buffer).
    deferred: std::collections::VecDeque<cqueue::Entry>,
    /// Whether the table holds routes (frames no relay rule takes are
    /// then looked up as routed packets).
    has_routes: bool,
    /// Send completions handled, and (frames, sends) at the last snapshot.
    sends_done: u64,
    published_at: (u64, u64),
}

/// Creates the eventfd an engine waits on (blocking, so io_uring polls it
/// rather than failing the read with EAGAIN).
pub fn wake_fd() -> io::Result<Arc<OwnedFd>> {
    // SAFETY: eventfd(2) has no memory-safety preconditions.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and nothing else owns it.
    Ok(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Wakes the engine waiting on `fd`.
pub fn wake(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

impl Engine {
    pub fn new(
        index: usize,
        cpu: usize,
        handle: TableHandle,
        stats: StatsHandle,
        stop: Arc<AtomicBool>,
        params: EngineParams,
        wake: Arc<OwnedFd>,
    ) -> io::Result<Engine> {
        let ring = build_ring(params.sq_entries)?;
        let bufs = BufRing::register(
            &ring.submitter(),
            params.buffers,
            params.buf_size + RECV_HEADROOM,
            0,
        )?;
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut recv_msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_msg.msg_namelen = RECV_NAME_LEN as u32;
        recv_msg.msg_controllen = RECV_CONTROL_LEN;
        Ok(Engine {
            ring,
            bufs,
            pending: vec![0; usize::from(params.buffers)],
            inputs: Vec::new(),
            input_of_if: FxHashMap::default(),
            egress: FxHashMap::default(),
            connected: FxHashMap::default(),
            outputs: Vec::new(),
            routes: Vec::new(),
            packet_tx: FxHashMap::default(),
            arena: TxArena::new(params.sq_entries as usize),
            // Made at the first input with a ring (see `install`).
            gso: BatchArena::new(0),
            open_batches: Vec::new(),
            open_of_slot: Vec::new(),
            recv_msg,
            table: Arc::new(ForwardingTable::empty()),
            counters: Vec::new(),
            snapshot: Vec::new(),
            dirty: Vec::new(),
            retired_snapshot: None,
            retired: FxHashMap::default(),
            drops: Drops::default(),
            frames: 0,
            batches: 0,
            batched_sends: 0,
            batched_datagrams: 0,
            index,
            cpu,
            handle,
            stats,
            stop,
            params,
            wake,
            wake_buf: Box::new([0; 8]),
            wake_armed: false,
            completions: Vec::with_capacity(256),
            deferred: std::collections::VecDeque::new(),
            sends_done: 0,
            published_at: (0, 0),
            has_routes: false,
        })
    }

    /// Runs until the stop flag is set, then publishes final counters.
    pub async fn run(mut self) {
        let mut last_publish = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if self.handle.generation() != self.table.generation() {
                // Queued entries name sockets and addresses `install` may
                // close or move: hand them all to the kernel first.
                for _ in 0..1000 {
                    if self.ring.submission().is_empty() {
                        break;
                    }
                    self.submit();
                    if !self.ring.submission().is_empty() {
                        self.reap_deferring_receives();
                    }
                }
                // Credit the sends already done to the table they were
                // made under; receives waiting in the queue are forwarded
                // by the new table.
                self.reap_deferring_receives();
                let next = self.handle.load();
                self.install(next);
            }
            self.arm_inputs();
            if !self.wake_armed {
                self.wake_armed = true;
                let entry = opcode::Read::new(
                    types::Fd(self.wake.as_raw_fd()),
                    self.wake_buf.as_mut_ptr(),
                    8,
                )
                .build()
                .user_data(WAKE);
                self.push(entry);
            }
            // Counts not yet published are due PUBLISH_INTERVAL after the
            // last publication: wake by then even if nothing arrives.
            let wait = if self.published_at != (self.frames, self.sends_done) {
                PUBLISH_INTERVAL
                    .saturating_sub(last_publish.elapsed())
                    .max(Duration::from_millis(1))
                    .min(self.params.idle_wait)
            } else {
                self.params.idle_wait
            };
            // Frames left in a ring wake nobody: do not sleep on them.
            let wait = if self.rings_ready() {
                Duration::ZERO
            } else {
                wait
            };
            let ts = types::Timespec::from(wait);
            let args = types::SubmitArgs::new().timespec(&ts);
            let waited = if wait.is_zero() {
                self.ring.submit()
            } else {
                self.ring.submitter().submit_with_args(1, &args)
            };
            self.after_submit();
            match waited {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                    ) => {}
                Err(e) => tracing::warn!(engine = self.index, error = %e, "io_uring wait failed"),
            }
            // Drain, submitting the sends each pass produced, until a pass
            // adds nothing (bounded, so a flood cannot starve the checks
            // above). The submission queue is empty when this loop ends, so
            // no queued send can outlive the socket it names.
            for _ in 0..16 {
                let (frames, sends) = self.poll_rings();
                let produced = self.drain() + sends;
                self.bufs.publish();
                if !self.ring.submission().is_empty() {
                    self.submit();
                }
                self.release_ring_slots();
                if produced == 0 && frames == 0 {
                    break;
                }
                if self.ring.submission().is_empty() && frames == 0 {
                    break;
                }
            }
            self.batches += 1;
            // Publishing costs an allocation per rule: only when something
            // was counted since the last snapshot.
            if last_publish.elapsed() >= PUBLISH_INTERVAL
                && self.published_at != (self.frames, self.sends_done)
            {
                self.publish_stats();
                last_publish = Instant::now();
            }
            glommio::yield_if_needed().await;
        }
        // With the supervisor's "stopping" line, these two tell a late
        // wake-up from a slow cancel when a stop takes long.
        tracing::debug!(engine = self.index, "engine saw the stop request");
        self.shutdown();
        tracing::debug!(engine = self.index, "engine stopped");
    }

    /// Frees the transmit arena once the kernel has taken every entry.
    fn after_submit(&mut self) {
        if self.ring.submission().is_empty() {
            self.arena.reset();
            if self.open_batches.is_empty() {
                self.gso.reset();
            }
        }
    }

    fn submit(&mut self) {
        loop {
            match self.ring.submit() {
                Ok(_) => {
                    self.after_submit();
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // The completion queue is full: make room without
                    // forwarding anything (this may run in the middle of a
                    // packet's fan-out, and a packet forwarded now would
                    // overtake it on the outputs it has not reached yet).
                    self.reap_deferring_receives();
                    self.bufs.publish();
                }
                Err(e) => {
                    tracing::warn!(engine = self.index, error = %e, "io_uring submit failed");
                    return;
                }
            }
        }
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every entry we push points at memory that outlives its
            // completion: sends read receive buffers that are recycled only
            // after their last send completes; receives use the registered
            // buffer ring; the wake read fills `wake_buf`, boxed and owned
            // by the engine, which outlives the ring; cancels carry no
            // pointers. Arena slots (prebuilt-header sends) are only reused
            // after the queue is empty again, and never from here: the
            // caller may have just filled one for `entry` itself.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // Full: hand the queued entries to the kernel, then retry.
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    self.reap_deferring_receives();
                    self.bufs.publish();
                }
                Err(_) => {}
            }
        }
    }

    /// Empties the completion queue, handling send completions now and
    /// keeping receive completions, in order, for the next `drain`.
    fn reap_deferring_receives(&mut self) {
        let mut batch = self.reap(usize::MAX);
        for cqe in batch.drain(..) {
            if let Some(recv) = self.handle_non_recv(cqe) {
                self.deferred.push_back(recv);
            }
        }
        self.completions = batch;
    }

    /// Up to `max` completions from the ring, in the reused `completions`
    /// storage (hand it back with `self.completions = batch`).
    fn reap(&mut self, max: usize) -> Vec<cqueue::Entry> {
        let mut batch = std::mem::take(&mut self.completions);
        batch.clear();
        let mut cq = self.ring.completion();
        cq.sync();
        batch.extend(cq.by_ref().take(max));
        batch
    }

    /// Handles a send, wake or cancel completion; gives a receive's back.
    fn handle_non_recv(&mut self, cqe: cqueue::Entry) -> Option<cqueue::Entry> {
        let data = cqe.user_data();
        if data & SEND != 0 {
            self.on_send_done(data, cqe.result());
        } else if data & WAKE != 0 {
            // The read consumed the wake-up; re-armed next pass.
            self.wake_armed = false;
        } else if data & CANCEL == 0 {
            return Some(cqe);
        }
        // A cancel's own completion: the receive it cancelled reports
        // separately.
        None
    }

    fn submission_full(&mut self) -> bool {
        self.ring.submission().is_full()
    }

    /// Processes every completion ready now. Returns how many sends it queued.
    fn drain(&mut self) -> usize {
        let mut produced = 0;
        // Receives set aside while the completion queue was full come first.
        while let Some(cqe) = self.deferred.pop_front() {
            produced += self.on_recv(cqe.user_data() as usize, cqe.result(), cqe.flags());
        }
        loop {
            let mut batch = self.reap(256);
            if batch.is_empty() {
                self.completions = batch;
                return produced;
            }
            for cqe in batch.drain(..) {
                if let Some(r) = self.handle_non_recv(cqe) {
                    produced += self.on_recv(r.user_data() as usize, r.result(), r.flags());
                }
            }
            self.completions = batch;
        }
    }

    fn on_recv(&mut self, slot: usize, res: i32, flags: u32) -> usize {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let Some(Some(input)) = self.inputs.get_mut(slot) else {
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            return 0;
        };
        if !more {
            input.armed = false;
            if input.closing {
                self.inputs[slot] = None;
                if let Some(bid) = bid {
                    self.bufs.recycle(bid);
                }
                return 0;
            }
        }
        let ifindex = input.sock.ifindex;
        let link = input.sock.link;
        if input.sock.ring.is_some() {
            // A poll: the frames are taken by `poll_rings`.
            return 0;
        }
        if res < 0 {
            if res == -libc::ENOBUFS {
                self.drops.no_buffer += 1;
            } else if res != -libc::ECANCELED {
                tracing::debug!(
                    engine = self.index,
                    ifindex,
                    error = -res,
                    "capture receive error"
                );
            }
            return 0;
        }
        let Some(bid) = bid else { return 0 };
        self.frames += 1;
        let sends = match self.received(bid, res as usize) {
            Some(rx) => self.forward(ifindex, link, rx),
            None => {
                self.drops.count(Reject::Truncated);
                0
            }
        };
        if sends == 0 {
            self.bufs.recycle(bid);
        }
        sends
    }

    /// Matches one received frame and queues a send per output (relay
    /// rule) or per oif (route). Returns the number of sends queued: the
    /// frame's holder (buffer or ring slot) is busy until they complete.
    fn forward(&mut self, ifindex: u32, link: LinkKind, rx: Received) -> usize {
        // SAFETY: the frame's bytes are the engine's until it recycles the
        // buffer or releases the ring slot, which it does only after the
        // sends queued here have read them; nothing else aliases them.
        let bytes = unsafe { std::slice::from_raw_parts(rx.ptr, rx.len) };
        let (rule_idx, payload) = match self.classify(ifindex, bytes, rx.meta, link) {
            Ok(m) => m,
            Err(reason) => {
                if self.has_routes {
                    match self.classify_routed(ifindex, bytes, rx.meta, link) {
                        Ok(Some((idx, at, len))) => return self.forward_routed(idx, rx, at, len),
                        Ok(None) => {}
                        Err(r) => {
                            self.drops.count(r);
                            return 0;
                        }
                    }
                }
                self.drops.count(reason);
                return 0;
            }
        };
        let plen = payload.len;
        self.mark(rule_idx);
        let counters = &mut self.counters[rule_idx];
        counters.packets += 1;
        counters.bytes += plen as u64;
        let tag = self.table.generation();
        let outputs = self.table.rules()[rule_idx].outputs.len();
        let mut queued = 0;
        let batch = rx.bid & RING != 0 && self.params.batch_sends != BatchSends::Off;
        for pos in 0..outputs {
            if batch && self.batch_output(rule_idx, pos, &payload) {
                queued += 1;
                continue;
            }
            let Some(entry) = self.output_entry(rule_idx, pos, payload) else {
                continue;
            };
            let flags = entry.get_user_data();
            let entry = entry.user_data(flags | send_data(tag, rule_idx, pos, rx.bid));
            self.hold(rx.bid);
            queued += 1;
            self.push(entry);
        }
        queued
    }

    /// One more send reads buffer `bid` (nothing to count for a ring slot:
    /// those are released once the submission queue is empty).
    fn hold(&mut self, bid: u16) {
        if bid & RING == 0 {
            self.pending[usize::from(bid)] += 1;
        }
    }

    /// Adds a ring frame's datagram for output `pos` of a rule to that
    /// output's open batch, or opens one. False when it must be sent on its
    /// own (no batching route, no room, a datagram without a checksum,
    /// TTL expiring): then any open batch of the output is sent first, so
    /// the output's datagrams leave in the order they came.
    fn batch_output(&mut self, rule_idx: usize, pos: usize, p: &Payload) -> bool {
        let slot = self.table.rules()[rule_idx].outputs[pos].slot as usize;
        let Some(Some(route)) = self.routes.get(slot).copied() else {
            return false;
        };
        let decrement = self.table.output_slots()[slot].ttl_decrement;
        // A datagram sent without a checksum keeps none, so never goes in a
        // batch (whose datagrams all get one). One whose sender left the
        // checksum to offload does: the batch's is computed for it.
        if !route.batch
            || p.len == 0
            || !route.fits(p.len)
            || (decrement && p.ttl <= 1)
            || matches!(p.checksum, UdpChecksum::None)
        {
            self.flush_slot(slot);
            return false;
        }
        let checksum = relayed_checksum(&route, p);
        let ttl = if decrement { p.ttl - 1 } else { route.ttl };
        if let Some(&i) = self.open_of_slot.get(slot).filter(|i| **i != u32::MAX) {
            let b = self.open_batches[i as usize];
            if b.rule_idx == rule_idx
                && b.pos == pos
                && b.src_port == p.from.src_port
                && b.ttl == ttl
                && b.seg_len == p.len
                && self.gso.len(b.at) < b.limit
            {
                self.gso.push(b.at, p.ptr, p.len);
                return true;
            }
            self.flush_slot(slot);
        }
        if self.gso.is_full() || slot >= self.open_of_slot.len() {
            return false;
        }
        let at = self.gso.open();
        self.gso.push(at, p.ptr, p.len);
        self.open_of_slot[slot] = self.open_batches.len() as u32;
        self.open_batches.push(OpenBatch {
            at,
            rule_idx,
            pos,
            slot,
            src_port: p.from.src_port,
            ttl,
            seg_len: p.len,
            checksum,
            // 64 KiB of IP packet at most.
            limit: MAX_SEGMENTS.min((65_535 - 28) / p.len),
        });
        true
    }

    /// Sends output `slot`'s open batch, if it has one.
    fn flush_slot(&mut self, slot: usize) {
        let Some(&i) = self.open_of_slot.get(slot) else {
            return;
        };
        if i == u32::MAX {
            return;
        }
        self.open_of_slot[slot] = u32::MAX;
        let b = self.open_batches.swap_remove(i as usize);
        if let Some(moved) = self.open_batches.get(i as usize) {
            self.open_of_slot[moved.slot] = i;
        }
        self.send_batch(b);
    }

    /// Sends every open batch (each pass over the rings ends with this).
    fn flush_batches(&mut self) {
        while let Some(b) = self.open_batches.pop() {
            self.open_of_slot[b.slot] = u32::MAX;
            self.send_batch(b);
        }
    }

    fn send_batch(&mut self, b: OpenBatch) {
        let Some(Some(route)) = self.routes.get(b.slot).copied() else {
            return;
        };
        let n = self.gso.len(b.at);
        if n > 1 {
            self.batched_sends += 1;
            self.batched_datagrams += n as u64;
        }
        let msg = self
            .gso
            .seal(b.at, &route, b.src_port, b.ttl, b.seg_len, b.checksum);
        let tag = self.table.generation();
        let entry = opcode::SendMsg::new(types::Fd(route.fd), msg)
            .flags(libc::MSG_DONTWAIT as u32)
            .build()
            .user_data(PACKET | send_data(tag, b.rule_idx, b.pos, ring_holder(n)));
        self.push(entry);
    }

    /// Forwards a packet route `idx` matched, the IP packet at `at..at +
    /// len` of the frame: TTL minus one with the header checksum updated
    /// in place (RFC 1624), then one Ethernet frame per oif on its
    /// `AF_PACKET` socket, all reading the same bytes. Never at TTL <= 1
    /// (`ttl_expired`); a packet past an oif's MTU is not sent there (no
    /// fragmentation: counted as that output's error).
    fn forward_routed(&mut self, idx: usize, rx: Received, at: usize, len: usize) -> usize {
        if at + len > rx.len {
            self.drops.truncated += 1;
            return 0;
        }
        // SAFETY: within the frame (checked above), which is the engine's
        // and not otherwise borrowed here (see `forward`); the routed path
        // writes the TTL in place before any send reads it.
        let packet = unsafe { std::slice::from_raw_parts_mut(rx.ptr.add(at), len) };
        if !input::decrement_ttl(packet) {
            // TTL <= 1 (the header is at least 20 bytes: checked).
            self.drops.ttl_expired += 1;
            return 0;
        }
        if rx.csum_not_ready {
            // The engines' sends get no offload: without this the copies
            // leave with the sender's seed and every receiver drops them.
            input::complete_l4_checksum(packet);
        }
        let ptr = packet.as_ptr();
        let c = &mut self.counters[idx];
        c.packets += 1;
        c.bytes += len as u64;
        let tag = self.table.generation();
        let outputs = self.table.rules()[idx].outputs.len();
        let mut queued = 0;
        for pos in 0..outputs {
            let slot = self.table.rules()[idx].outputs[pos].slot as usize;
            let Some(Some(route)) = self.routes.get(slot).copied() else {
                self.count_output_failure(idx, pos, false);
                continue;
            };
            if len > route.mtu as usize {
                self.count_output_failure(idx, pos, false);
                continue;
            }
            if self.arena.is_full() || self.submission_full() {
                self.submit();
            }
            if self.arena.is_full() {
                self.count_output_failure(idx, pos, true);
                continue;
            }
            let msg = self.arena.prepare_routed(&route, ptr, len);
            let entry = opcode::SendMsg::new(types::Fd(route.fd), msg)
                .flags(libc::MSG_DONTWAIT as u32)
                .build()
                .user_data(PACKET | send_data(tag, idx, pos, rx.bid));
            self.hold(rx.bid);
            queued += 1;
            self.push(entry);
        }
        queued
    }

    /// A route's match for a frame no relay rule took: `Ok(Some((rule,
    /// offset of the IP packet in the frame, its length)))`, `Ok(None)`
    /// when no route takes it (the relay's reason stands), or why a frame a
    /// route would take is dropped.
    fn classify_routed(
        &self,
        ifindex: u32,
        bytes: &[u8],
        meta: Meta,
        link: LinkKind,
    ) -> Result<Option<(usize, usize, usize)>, Reject> {
        let Ok(r) = input::check_routed(bytes, link, meta, |m| self.table.is_local_mac(m)) else {
            return Ok(None);
        };
        let Some(idx) = self
            .table
            .lookup(ifindex, r.dst, crate::table::ROUTE_PORT, r.src)
        else {
            return Ok(None);
        };
        let at = r.packet.as_ptr() as usize - bytes.as_ptr() as usize;
        Ok(Some((idx, at, r.packet.len())))
    }

    /// The send of one payload to output `pos` of a rule (user data: only
    /// the PACKET bit), or None when it cannot be sent (counted here).
    fn output_entry(&mut self, rule_idx: usize, pos: usize, p: Payload) -> Option<squeue::Entry> {
        let slot = self.table.rules()[rule_idx].outputs[pos].slot as usize;
        // `ttl: "decrement"`: the input's TTL less one; a datagram that
        // arrived with TTL 1 goes no further on this output.
        let decrement = self.table.output_slots()[slot].ttl_decrement;
        if decrement && p.ttl <= 1 {
            self.drops.ttl_expired += 1;
            return None;
        }
        let ttl = p.ttl.saturating_sub(1);
        // PacketRoute is Copy: take it out so the arena can be flushed.
        if let Some(Some(route)) = self.routes.get(slot).copied() {
            if route.fits(p.len) {
                // Room for the entry first, so the slot filled below is
                // queued before anything can free the arena.
                if self.arena.is_full() || self.submission_full() {
                    self.submit();
                }
                if self.arena.is_full() {
                    // The kernel did not take the queue; skip the packet for
                    // this output rather than reuse a slot.
                    self.count_output_failure(rule_idx, pos, true);
                    return None;
                }
                let csum = relayed_checksum(&route, &p);
                let ttl = if decrement { ttl } else { route.ttl };
                let msg = self
                    .arena
                    .prepare(&route, p.from.src_port, ttl, csum, p.ptr, p.len);
                let entry = opcode::SendMsg::new(types::Fd(route.fd), msg)
                    .flags(libc::MSG_DONTWAIT as u32)
                    .build()
                    .user_data(PACKET);
                return Some(entry);
            }
        }
        let Some(Some((fd, addr))) = self.outputs.get(slot).copied() else {
            // Its socket could not be opened (logged at install).
            self.count_output_failure(rule_idx, pos, false);
            return None;
        };
        if decrement {
            // The TTL rides along as an IP_TTL control message (it applies
            // to multicast too), in an arena slot like the headers above.
            if self.arena.is_full() || self.submission_full() {
                self.submit();
            }
            if self.arena.is_full() {
                self.count_output_failure(rule_idx, pos, true);
                return None;
            }
            let msg = self.arena.prepare_udp(addr, ttl, p.ptr, p.len);
            return Some(
                opcode::SendMsg::new(types::Fd(fd), msg)
                    .flags(libc::MSG_DONTWAIT as u32)
                    .build(),
            );
        }
        let addr = self.outputs[slot].as_ref().and_then(|(_, a)| a.as_ref());
        let mut send =
            opcode::Send::new(types::Fd(fd), p.ptr, p.len as u32).flags(libc::MSG_DONTWAIT);
        if let Some(addr) = addr {
            // The kernel copies the address when it takes the entry, and the
            // submission queue is always drained before `outputs` changes.
            send = send
                .dest_addr((addr as *const libc::sockaddr_in).cast())
                .dest_addr_len(std::mem::size_of::<libc::sockaddr_in>() as u32);
        }
        Some(send.build())
    }

    /// Counts a send that could not be made: refused for lack of room
    /// (`full`) or for want of a socket.
    fn count_output_failure(&mut self, rule_idx: usize, pos: usize, full: bool) {
        self.mark(rule_idx);
        let c = self.counters[rule_idx].outputs.get_mut(pos);
        if full {
            self.drops.output_full += 1;
            if let Some(c) = c {
                c.full += 1;
            }
        } else {
            self.drops.output_error += 1;
            if let Some(c) = c {
                c.errors += 1;
            }
        }
    }

    /// The frame a multishot receive put in buffer `bid` (`len` bytes with
    /// the receive header), with what the kernel said of it; None when the
    /// header does not parse.
    fn received(&mut self, bid: u16, len: usize) -> Option<Received> {
        let buf = self.bufs.buffer_mut(bid, len);
        let base = buf.as_mut_ptr();
        let msg = types::RecvMsgOut::parse(buf, &self.recv_msg).ok()?;
        let bytes = msg.payload_data();
        let mut meta = Meta {
            wire_len: (msg.incoming_payload_len() as usize).max(bytes.len()),
            vlan_tci: None,
            pkt_type: msg.name_data().get(10).copied().unwrap_or(0),
        };
        if msg.is_payload_truncated() {
            meta.wire_len = meta.wire_len.max(self.params.buf_size + 1);
        }
        let mut csum_not_ready = false;
        if let Some(aux) = auxdata(msg.control_data()) {
            meta.wire_len = meta.wire_len.max(aux.tp_len as usize);
            if aux.tp_status & TP_STATUS_VLAN_VALID != 0 {
                meta.vlan_tci = Some(aux.tp_vlan_tci);
            }
            csum_not_ready = aux.tp_status & TP_STATUS_CSUMNOTREADY != 0;
        }
        let at = bytes.as_ptr() as usize - base as usize;
        Some(Received {
            // SAFETY: `at` is where the frame starts within the buffer.
            ptr: unsafe { base.add(at) },
            len: bytes.len(),
            meta,
            csum_not_ready,
            bid,
        })
    }

    /// Judges one received frame by the shared definition of valid input
    /// ([`crate::input::check`]) and finds its rule: the rule's index and
    /// the payload within `bytes`, or why it is dropped.
    fn classify(
        &self,
        ifindex: u32,
        bytes: &[u8],
        meta: Meta,
        link: LinkKind,
    ) -> Result<(usize, Payload), Reject> {
        let d = input::check(bytes, link, meta, |m| self.table.is_local_mac(m))?;
        let rule = self
            .table
            .lookup(ifindex, d.dst, d.dst_port, d.src)
            .ok_or(Reject::NoRule)?;
        Ok((
            rule,
            Payload {
                ptr: d.payload.as_ptr(),
                len: d.payload.len(),
                from: d.endpoints(),
                checksum: d.checksum,
                ttl: d.ttl,
            },
        ))
    }

    fn on_send_done(&mut self, data: u64, res: i32) {
        self.sends_done += 1;
        let (tag, rule, out, bid) = send_fields(data);
        let segments = segments_of(bid);
        if let (Some(rule), Some(out), true) =
            (rule, out, tag == self.table.generation() & TAG_MASK)
        {
            self.mark(rule);
            // What the send put before the payload: the vnet header, and
            // Ethernet (routed) or all headers (relayed) on the packet path.
            let headers = if data & PACKET != 0 {
                let slot = self.table.rules()[rule]
                    .outputs
                    .get(out)
                    .map(|o| o.slot as usize);
                let prefix = slot
                    .and_then(|s| self.routes.get(s).copied().flatten())
                    .map_or(0, |r| r.prefix_len());
                prefix
                    + if self.table.is_route(rule) {
                        mcr_wire::ethernet::HEADER_LEN
                    } else {
                        crate::tx::HEADER_LEN
                    }
            } else {
                0
            };
            if let Some(c) = self
                .counters
                .get_mut(rule)
                .and_then(|r| r.outputs.get_mut(out))
            {
                if res >= 0 {
                    c.packets += segments;
                    c.bytes += (res as u64).saturating_sub(headers as u64);
                } else if res == -libc::EAGAIN || res == -libc::ENOBUFS {
                    c.full += segments;
                } else {
                    c.errors += segments;
                }
            }
        }
        if res == -libc::EAGAIN || res == -libc::ENOBUFS {
            self.drops.output_full += segments;
        } else if res < 0 {
            self.drops.output_error += segments;
        }
        if bid & RING != 0 {
            return;
        }
        let p = &mut self.pending[usize::from(bid)];
        *p = p.saturating_sub(1);
        if *p == 0 {
            self.bufs.recycle(bid);
        }
    }

    /// Forwards what the receive rings hold (up to RING_BUDGET frames
    /// each). Returns (frames read, sends queued).
    fn poll_rings(&mut self) -> (usize, usize) {
        let (mut frames, mut sends) = (0, 0);
        for slot in 0..self.inputs.len() {
            let sock = match self.inputs.get(slot) {
                Some(Some(i)) if !i.closing && i.sock.ring.is_some() => Arc::clone(&i.sock),
                _ => continue,
            };
            let Some(ring) = sock.ring.as_ref() else {
                continue;
            };
            for _ in 0..RING_BUDGET {
                let Some(f) = ring.next() else { break };
                frames += 1;
                self.frames += 1;
                let bytes = ring.bytes(&f);
                let rx = Received {
                    ptr: bytes.as_mut_ptr(),
                    len: bytes.len(),
                    meta: Meta {
                        wire_len: f.wire_len.max(bytes.len()),
                        vlan_tci: (f.status & crate::rxring::TP_STATUS_VLAN_VALID != 0)
                            .then_some(f.vlan_tci),
                        pkt_type: f.pkt_type,
                    },
                    csum_not_ready: f.status & crate::rxring::TP_STATUS_CSUMNOTREADY != 0,
                    bid: RING_BID,
                };
                sends += self.forward(sock.ifindex, sock.link, rx);
                if let Some(Some(i)) = self.inputs.get_mut(slot) {
                    i.release.push(f.slot);
                }
            }
        }
        self.flush_batches();
        (frames, sends)
    }

    /// Hands the ring slots read so far back to the kernel, once no queued
    /// send can still read them (the submission queue is empty: sends are
    /// `MSG_DONTWAIT`, issued and copied while the kernel takes them).
    fn release_ring_slots(&mut self) {
        if !self.ring.submission().is_empty() {
            return;
        }
        for input in self.inputs.iter_mut().flatten() {
            if let Some(ring) = input.sock.ring.as_ref() {
                for s in input.release.drain(..) {
                    ring.release(s);
                }
            }
        }
    }

    fn rings_ready(&self) -> bool {
        self.inputs
            .iter()
            .flatten()
            .any(|i| !i.closing && i.sock.ring.as_ref().is_some_and(|r| r.ready()))
    }

    fn arm_inputs(&mut self) {
        let bgid = self.bufs.bgid();
        for slot in 0..self.inputs.len() {
            let Some(input) = &mut self.inputs[slot] else {
                continue;
            };
            if input.armed || input.closing {
                continue;
            }
            if let Some(ring) = &input.sock.ring {
                // The ring is read directly; a one-shot poll wakes the
                // engine when it would otherwise sleep on an empty ring.
                // While frames wait the engine does not sleep, and a poll
                // per pass would only cost a completion each.
                if ring.ready() {
                    continue;
                }
                input.armed = true;
                let entry =
                    opcode::PollAdd::new(types::Fd(input.sock.raw_fd()), libc::POLLIN as u32)
                        .build()
                        .user_data(slot as u64);
                self.push(entry);
                continue;
            }
            input.armed = true;
            // MSG_TRUNC: a frame past the buffer reports its real length.
            let entry = opcode::RecvMsgMulti::new(
                types::Fd(input.sock.raw_fd()),
                &*self.recv_msg as *const libc::msghdr,
                bgid,
            )
            .flags(libc::MSG_TRUNC as u32)
            .build()
            .user_data(slot as u64);
            self.push(entry);
        }
    }

    /// Switches to a new table: opens and closes sockets for what changed
    /// and carries each rule's counters over by id.
    fn install(&mut self, next: Arc<ForwardingTable>) {
        self.release_ring_slots();
        debug_assert!(self.open_batches.is_empty(), "batches are sent every pass");
        let rings = next
            .captures()
            .iter()
            .any(|(_, set)| set.get(self.index).is_some_and(|s| s.ring.is_some()));
        if rings && self.gso.capacity() == 0 {
            self.gso = BatchArena::new(BATCH_ARENA);
        }
        // Capture sockets: this engine's socket of each input interface.
        let wanted: Vec<(u32, Arc<CaptureSocket>)> = next
            .captures()
            .iter()
            .filter_map(|(i, set)| set.get(self.index).map(|s| (*i, Arc::clone(s))))
            .collect();
        for (ifindex, sock) in &wanted {
            if let Some(&slot) = self.input_of_if.get(ifindex) {
                let same =
                    matches!(&self.inputs[slot], Some(input) if Arc::ptr_eq(&input.sock, sock));
                if same {
                    continue;
                }
                // The interface came back with new sockets.
                self.input_of_if.remove(ifindex);
                self.close_input(slot);
            }
            let slot = self
                .inputs
                .iter()
                .position(Option::is_none)
                .unwrap_or_else(|| {
                    self.inputs.push(None);
                    self.inputs.len() - 1
                });
            self.inputs[slot] = Some(InputSlot {
                sock: Arc::clone(sock),
                armed: false,
                closing: false,
                release: Vec::new(),
            });
            self.input_of_if.insert(*ifindex, slot);
        }
        let gone: Vec<u32> = self
            .input_of_if
            .keys()
            .copied()
            .filter(|i| !wanted.iter().any(|(w, _)| w == i))
            .collect();
        for ifindex in gone {
            if let Some(slot) = self.input_of_if.remove(&ifindex) {
                self.close_input(slot);
            }
        }

        // Egress: a connected socket per output while there are few enough,
        // else shared sockets per (interface, TTL, kind). Kept while used.
        let use_connected = next.output_slots().len() <= CONNECTED_OUTPUTS;
        let mut wanted_egress: FxHashMap<EgressKey, &str> = FxHashMap::default();
        if !use_connected {
            for slot in next.output_slots() {
                if slot.dest.port() == crate::table::ROUTE_PORT {
                    continue;
                }
                wanted_egress.insert(egress_key(slot), &slot.ifname);
            }
        }
        self.egress.retain(|k, _| wanted_egress.contains_key(k));
        for (key, ifname) in wanted_egress {
            if self.egress.contains_key(&key) {
                continue;
            }
            match OutputSocket::open(key, ifname) {
                Ok(sock) => {
                    self.egress.insert(key, sock);
                }
                Err(e) => {
                    tracing::warn!(engine = self.index, interface = ifname, error = %e, "opening output socket failed")
                }
            }
        }
        let mut old_connected = std::mem::take(&mut self.connected);
        if use_connected {
            for slot in next.output_slots() {
                // A route's oif sends whole frames on AF_PACKET only.
                if slot.dest.port() == crate::table::ROUTE_PORT {
                    continue;
                }
                let sock = old_connected.remove(slot).map(Ok).unwrap_or_else(|| {
                    OutputSocket::open_connected(egress_key(slot), &slot.ifname, slot.dest)
                });
                match sock {
                    Ok(sock) => {
                        self.connected.insert(slot.clone(), sock);
                    }
                    Err(e) => {
                        tracing::warn!(engine = self.index, output = %slot.label(), error = %e, "opening output socket failed")
                    }
                }
            }
        }
        drop(old_connected);
        // Prebuilt-header routes for multicast outputs on interfaces whose
        // address and MAC are known.
        let mut wanted_tx: Vec<u32> = Vec::new();
        for slot in next.output_slots() {
            // Routes have no UDP path: their oifs always get one.
            let routed = slot.dest.port() == crate::table::ROUTE_PORT;
            if (self.params.packet_tx || routed)
                && slot.link.is_some()
                && slot.dest.ip().is_multicast()
            {
                wanted_tx.push(slot.ifindex);
            }
        }
        self.packet_tx.retain(|i, _| wanted_tx.contains(i));
        for ifindex in wanted_tx {
            if self.packet_tx.contains_key(&ifindex) {
                continue;
            }
            match PacketTxSocket::open(ifindex) {
                Ok(sock) => {
                    self.packet_tx.insert(ifindex, sock);
                }
                Err(e) => {
                    tracing::debug!(engine = self.index, ifindex, error = %e, "no AF_PACKET transmit socket; using UDP")
                }
            }
        }
        // Whether each output device leaves batches cut into frames: asked
        // at every table change (its offload settings may have changed),
        // and only by engines that read a ring (the only ones that batch).
        let batching: FxHashMap<u32, bool> =
            if self.gso.capacity() > 0 && self.params.batch_sends != BatchSends::Off {
                next.output_slots()
                    .iter()
                    .map(|s| (s.ifindex, s.ifname.as_str()))
                    .collect::<std::collections::BTreeMap<u32, &str>>()
                    .into_iter()
                    .map(|(i, name)| {
                        (
                            i,
                            self.params.batch_sends == BatchSends::Every
                                || crate::ethtool::batches_leave_cut(name),
                        )
                    })
                    .collect()
            } else {
                FxHashMap::default()
            };
        self.routes = next
            .output_slots()
            .iter()
            .map(|slot| {
                let link = slot.link?;
                if !slot.dest.ip().is_multicast() {
                    return None;
                }
                if !self.params.packet_tx && slot.dest.port() != crate::table::ROUTE_PORT {
                    return None;
                }
                let sock = self.packet_tx.get(&slot.ifindex)?;
                let batch = batching.get(&slot.ifindex).copied().unwrap_or(false);
                Some(PacketRoute::new(sock, link, slot.dest, slot.ttl, batch))
            })
            .collect();
        self.open_of_slot = vec![u32::MAX; self.routes.len()];
        self.outputs = next
            .output_slots()
            .iter()
            .map(|slot| {
                if use_connected {
                    self.connected.get(slot).map(|sock| (sock.raw_fd(), None))
                } else {
                    self.egress
                        .get(&egress_key(slot))
                        .map(|sock| (sock.raw_fd(), Some(dest_addr(slot.dest))))
                }
            })
            .collect();

        // Counters follow rule ids, an output's its label
        // (`group:port@interface`), so they live as long as the rule: across
        // reloads, path switches, and its interfaces going away and coming
        // back (a rule the table lacks for now is "dormant": its counts are
        // kept, and published, until it returns or is removed).
        // An edit of the running table (one rule added or removed) moved
        // only the indexes it names: follow them, leaving the other rules'
        // counters where they are.
        if let Some(delta) = next.delta() {
            if delta.base == self.table.generation()
                && self.counters.len() == self.table.rules().len()
                && self.retired.is_empty()
            {
                let mut touched = Vec::with_capacity(delta.steps.len());
                for step in &delta.steps {
                    match *step {
                        DeltaStep::Added(_) => {
                            touched.push(self.counters.len());
                            self.counters.push(RuleCounters::default());
                        }
                        DeltaStep::Removed(i) if (i as usize) < self.counters.len() => {
                            // The last rule's chunk shrinks.
                            self.mark(self.counters.len() - 1);
                            self.counters.swap_remove(i as usize);
                            touched.push(i as usize);
                        }
                        DeltaStep::Removed(_) => {}
                    }
                }
                // A new rule's output counters, sized by its outputs (a
                // moved rule keeps its own).
                for i in touched {
                    self.mark(i);
                    if let (Some(c), Some(rule)) = (self.counters.get_mut(i), next.rules().get(i)) {
                        if c.outputs.len() + c.parked.len() == 0 {
                            c.outputs = vec![OutCounters::default(); rule.outputs.len()];
                        }
                    }
                }
                if self.counters.len() == next.rules().len() {
                    self.table = next;
                    self.publish_stats();
                    return;
                }
                tracing::warn!(
                    engine = self.index,
                    "table delta does not add up; counters matched by id"
                );
            }
        }
        let mut kept: FxHashMap<String, Kept> = std::mem::take(&mut self.retired);
        let old_counters = std::mem::take(&mut self.counters);
        for (rule, c) in self.table.rules().iter().zip(old_counters) {
            let mut outputs: Vec<(String, OutCounters)> = rule
                .outputs
                .iter()
                .zip(c.outputs)
                .map(|(o, oc)| (self.table.output_slots()[o.slot as usize].label(), oc))
                .collect();
            outputs.extend(c.parked);
            kept.insert(
                rule.id.clone(),
                Kept {
                    packets: c.packets,
                    bytes: c.bytes,
                    outputs,
                },
            );
        }
        let counters = next
            .rules()
            .iter()
            .map(|rule| {
                let mut c = RuleCounters {
                    outputs: vec![OutCounters::default(); rule.outputs.len()],
                    ..Default::default()
                };
                if let Some(mut prev) = kept.remove(rule.id.as_str()) {
                    c.packets = prev.packets;
                    c.bytes = prev.bytes;
                    for (pos, out) in rule.outputs.iter().enumerate() {
                        let label = next.output_slots()[out.slot as usize].label();
                        if let Some(at) = prev.outputs.iter().position(|(l, _)| *l == label) {
                            c.outputs[pos] = prev.outputs.swap_remove(at).1;
                        }
                    }
                    c.parked = prev.outputs;
                }
                c
            })
            .collect();
        kept.retain(|id, _| next.is_dormant(id));
        self.retired = kept;
        self.counters = counters;
        self.snapshot.clear();
        self.dirty.clear();
        self.retired_snapshot = None;
        self.has_routes = next.has_routes();
        self.table = next;
        self.publish_stats();
    }

    /// Notes that rule `i`'s counts moved: its snapshot chunk is rebuilt.
    #[inline]
    fn mark(&mut self, i: usize) {
        if let Some(d) = self.dirty.get_mut(i / STATS_CHUNK) {
            *d = true;
        }
    }

    fn close_input(&mut self, slot: usize) {
        let Some(Some(input)) = self.inputs.get_mut(slot) else {
            return;
        };
        if input.armed {
            input.closing = true;
            let entry = opcode::AsyncCancel::new(slot as u64)
                .build()
                .user_data(CANCEL | slot as u64);
            self.push(entry);
        } else {
            self.inputs[slot] = None;
        }
    }

    fn publish_stats(&mut self) {
        self.published_at = (self.frames, self.sends_done);
        for input in self.inputs.iter().flatten() {
            self.drops.capture_overflow += input.sock.take_drops();
        }
        let table = &self.table;
        let out_stats = |label: String, oc: &OutCounters| OutputStats {
            output: label,
            packets: oc.packets,
            bytes: oc.bytes,
            full: oc.full,
            errors: oc.errors,
        };
        let chunks = self.counters.len().div_ceil(STATS_CHUNK);
        self.snapshot.truncate(chunks);
        self.dirty.resize(chunks, true);
        for (k, dirty) in self.dirty.iter_mut().enumerate() {
            if !*dirty && k < self.snapshot.len() {
                continue;
            }
            *dirty = false;
            let range = k * STATS_CHUNK..((k + 1) * STATS_CHUNK).min(self.counters.len());
            let chunk: Vec<RuleStats> = range
                .map(|i| {
                    let (rule, c) = (&table.rules()[i], &self.counters[i]);
                    RuleStats {
                        id: rule.id.clone(),
                        packets: c.packets,
                        bytes: c.bytes,
                        outputs: rule
                            .outputs
                            .iter()
                            .zip(&c.outputs)
                            .map(|(o, oc)| {
                                out_stats(table.output_slots()[o.slot as usize].label(), oc)
                            })
                            .chain(c.parked.iter().map(|(l, oc)| out_stats(l.clone(), oc)))
                            .collect(),
                    }
                })
                .collect();
            if k < self.snapshot.len() {
                self.snapshot[k] = Arc::new(chunk);
            } else {
                self.snapshot.push(Arc::new(chunk));
            }
        }
        let retired = self.retired_snapshot.get_or_insert_with(|| {
            Arc::new(
                self.retired
                    .iter()
                    .map(|(id, k)| RuleStats {
                        id: id.clone(),
                        packets: k.packets,
                        bytes: k.bytes,
                        outputs: k
                            .outputs
                            .iter()
                            .map(|(l, oc)| out_stats(l.clone(), oc))
                            .collect(),
                    })
                    .collect(),
            )
        });
        let mut chunks = self.snapshot.clone();
        if !retired.is_empty() {
            chunks.push(Arc::clone(retired));
        }
        let rules = RuleStatsList { chunks };
        self.stats.publish(EngineStats {
            engine: self.index,
            cpu: self.cpu,
            generation: self.table.generation(),
            frames: self.frames,
            batches: self.batches,
            batched_sends: self.batched_sends,
            batched_datagrams: self.batched_datagrams,
            drops: self.drops,
            rules,
        });
    }

    /// Cancels every request still in the kernel (multishot receives, the
    /// wake read) and waits for their last completions, so the kernel never
    /// writes into buffers this engine is about to free.
    fn shutdown(&mut self) {
        self.submit();
        self.drain();
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL);
        self.push(cancel);
        for input in self.inputs.iter_mut().flatten() {
            input.closing = true;
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        let ts = types::Timespec::from(Duration::from_millis(20));
        let args = types::SubmitArgs::new().timespec(&ts);
        while (self
            .inputs
            .iter()
            .any(|i| i.as_ref().is_some_and(|i| i.armed))
            || self.wake_armed)
            && Instant::now() < deadline
        {
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.after_submit();
            self.drain();
        }
        if self.wake_armed || self.inputs.iter().flatten().any(|i| i.armed) {
            tracing::warn!(
                engine = self.index,
                "requests still in the kernel 500 ms after their cancel"
            );
        }
        self.publish_stats();
    }
}

/// Rules per chunk of a counter snapshot.
const STATS_CHUNK: usize = 256;

/// The UDP checksum of payload `p` sent on `route`: the input's, updated
/// for the new addresses and destination port (the source port stays);
/// see [`input::relayed_checksum`].
fn relayed_checksum(route: &PacketRoute, p: &Payload) -> u16 {
    let to = Endpoints {
        src: route.src,
        dst: *route.dest.ip(),
        src_port: p.from.src_port,
        dst_port: route.dest.port(),
    };
    input::relayed_checksum(p.checksum, p.from, to)
}

fn egress_key(slot: &OutputSlot) -> EgressKey {
    EgressKey {
        ifindex: slot.ifindex,
        ttl: slot.ttl,
        multicast: slot.dest.ip().is_multicast(),
    }
}

fn build_ring(entries: u32) -> io::Result<IoUring> {
    let cq = entries * 8;
    // Single issuer cuts kernel-side locking; older kernels refuse it, so
    // fall back to a plain ring. (COOP_TASKRUN made no measurable
    // difference to throughput or latency here; left out to keep wake-ups
    // immediate by construction.)
    IoUring::builder()
        .setup_single_issuer()
        .setup_cqsize(cq)
        .build(entries)
        .or_else(|_| IoUring::builder().setup_cqsize(cq).build(entries))
}

/// The `PACKET_AUXDATA` message among a receive's control messages.
fn auxdata(control: &[u8]) -> Option<libc::tpacket_auxdata> {
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let mut at = 0;
    while at + hdr <= control.len() {
        // SAFETY: at + hdr <= len; read_unaligned copes with any alignment.
        let c: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control[at..].as_ptr().cast()) };
        let len = c.cmsg_len as usize;
        if len < hdr || at + len > control.len() {
            return None;
        }
        if c.cmsg_level == libc::SOL_PACKET
            && c.cmsg_type == libc::PACKET_AUXDATA
            && len >= hdr + AUXDATA_LEN
        {
            // SAFETY: the message holds AUXDATA_LEN bytes after its header.
            return Some(unsafe { std::ptr::read_unaligned(control[at + hdr..].as_ptr().cast()) });
        }
        at += (len + 7) & !7;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14 item 5: sends of rules at table index 65,535 and beyond
    /// (a 70,000-rule table) are attributed to their rule and output.
    #[test]
    fn sends_past_rule_65535_are_attributed() {
        for (rule, out) in [
            (0, 0),
            (65_534, 1),
            (65_535, 0),
            (69_999, 299),
            (4_194_302, 65_534),
        ] {
            for packet in [0, PACKET] {
                let d = send_data(0x1ab, rule, out, 1023) | packet;
                assert_eq!(d & SEND, SEND);
                assert_eq!(d & PACKET, packet);
                assert_eq!(
                    send_fields(d),
                    (0xab, Some(rule), Some(out), 1023),
                    "rule {rule} output {out}"
                );
            }
        }
        // Past the fields: not attributed, never aliased to another rule.
        let d = send_data(1, 5_000_000, 70_000, 7);
        assert_eq!(send_fields(d), (1, None, None, 7));
    }
}
