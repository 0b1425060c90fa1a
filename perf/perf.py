#!/usr/bin/env python3
"""mcr performance harness: orchestration, measurement and reporting.

Started by perf/run.sh (which builds, installs packages and guarantees
teardown); see perf/README.md. Python 3 standard library only.

For every selected scenario and every relay under test: build nothing new
(the topology from topo.sh is shared), start the relay, check that it
relays at all, then walk a ladder of offered rates. Each step starts the
sink listeners (`mcrd listen --json`), snapshots counters, runs `mcrgen`
for a fixed time, lets the queues drain, snapshots again and stops the
listeners. Results go to perf/results/<timestamp>/.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import report  # perf/report.py, next to this file

sys.dont_write_bytecode = True  # report.py is imported from here; keep perf/ free of __pycache__

ROOT = Path(__file__).resolve().parent.parent
# run.sh builds with cargo, which honours CARGO_TARGET_DIR: look where it built.
BIN = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve() / "release"
HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PASS_RATIO = 0.999
KERNEL_MAXVIFS = 32  # MAXVIFS in include/linux/mroute.h: input + outputs

# Every process we start, so that any exit path can stop them (by pid).
PROCS = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


def spawn(cmd, **kw):
    p = subprocess.Popen([str(c) for c in cmd], **kw)
    PROCS.append(p)
    return p


def stop_procs(procs, sig=signal.SIGTERM, timeout=3.0):
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
    deadline = time.time() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for p in procs:
        if p in PROCS:
            PROCS.remove(p)


# --------------------------------------------------------------------------
# Topology (built by topo.sh; this only knows the names)


class Topo:
    def __init__(self, prefix, nout, uso=False):
        self.prefix, self.nout, self.uso = prefix, nout, uso
        self.sink_napi = True  # sinks take frames in a NAPI poll (GRO on; see sinks)
        self.gen_ns, self.rly_ns, self.snk_ns = f"{prefix}-gen", f"{prefix}-rly", f"{prefix}-snk"
        self.gen_if, self.in_if = f"{prefix}-g", f"{prefix}-i"
        self.gen_addr, self.in_addr = "10.200.0.1", "10.200.0.2"

    def out_if(self, k):
        return f"{self.prefix}-o{k}"

    def sink_if(self, k):
        return f"{self.prefix}-s{k}"

    def out_addr(self, k):
        return f"10.200.{k + 1}.1"

    def up(self):
        run([HERE / "topo.sh", "up", self.prefix, self.nout] + (["uso"] if self.uso else []))

    def down(self):
        subprocess.run([str(HERE / "topo.sh"), "down", self.prefix], capture_output=True)

    def sinks(self, apart_cpus, gro):
        """How every sink receives (topo.sh sinks): on apart_cpus, or in the
        sender's context when None; gro merges UDP runs before IP. With
        --uso, sinks apart have GRO off altogether, so that none of their
        receive runs in a NAPI poll on the sender's CPU (see README)."""
        self.sink_napi = not (self.uso and apart_cpus)
        mode = ("on" if gro else "off") if self.sink_napi else "none"
        how = ["apart" if apart_cpus else "inline", mode] + ([apart_cpus] if apart_cpus else [])
        run([HERE / "topo.sh", "sinks", self.prefix, self.nout] + how)

    def relay_drops(self):
        """Drops counted by the relay namespace's interfaces (input rx + outputs tx)."""
        out = run(["ip", "-n", self.rly_ns, "-j", "-s", "link", "show"]).stdout
        n = 0
        for d in json.loads(out):
            st = d.get("stats64", {})
            if d["ifname"] == self.in_if:
                n += st["rx"]["dropped"]
            elif d["ifname"].startswith(f"{self.prefix}-o"):
                n += st["tx"]["dropped"]
        return n

    def sink_rx(self):
        """(rx_packets, rx_bytes) of every sink interface."""
        out = run(["ip", "-n", self.snk_ns, "-j", "-s", "link", "show"]).stdout
        return {d["ifname"]: (d["stats64"]["rx"]["packets"], d["stats64"]["rx"]["bytes"]) for d in json.loads(out)}

    def frame_overhead(self):
        """What a sink veth's rx_bytes counts per frame besides the UDP
        payload: the IPv4 and UDP headers, and the Ethernet header unless
        the frame went through the sink's NAPI poll (veth counts those after
        taking it off). A batch that crossed the veth whole (--uso) has
        them once."""
        return 20 + 8 + (0 if self.sink_napi else 14)

    def datagrams(self, before, after, size):
        """(datagrams, exact) a sink received between two sink_rx readings
        of it: its frames, or with --uso (where one frame may be a batch of
        datagrams of `size` bytes each, cut by no one, as a NIC with UDP
        segmentation offload would on the wire) its payload bytes over the
        datagram size. `exact` is False when those bytes are not a whole
        number of datagrams: a wrong per-frame overhead, or stray frames."""
        frames, nbytes = after[0] - before[0], after[1] - before[1]
        if not self.uso:
            return frames, True
        payload = max(0, nbytes - self.frame_overhead() * frames)
        return payload // size, payload % size == 0


# --------------------------------------------------------------------------
# Scenarios


class Scenario:
    def __init__(self, sid, title, size, outputs, streams=1, latency=False, rates=None):
        self.id, self.title, self.size = sid, title, size
        self.rates = rates or DEFAULT_RATES  # pps; 0 = as fast as mcrgen can
        self.outputs, self.streams, self.latency = outputs, streams, latency
        self.n = int(sid[1:])
        self.in_group, self.in_port = f"239.1.1.{self.n}", 5000
        self.out_group, self.out_port = f"239.2.1.{self.n}", 6000  # where translating relays send

    def sampled_outputs(self, limit):
        if self.outputs <= limit:
            return list(range(self.outputs))
        step = self.outputs / limit
        return sorted({int(i * step) for i in range(limit)})

    def sampled_streams(self, limit):
        if self.streams <= limit:
            return list(range(self.streams))
        step = self.streams / limit
        return sorted({int(i * step) for i in range(limit)})


# Steps fine enough that "max rate passing" is within about 15% of the truth;
# a relay stops climbing after two failed steps in a row (then one step at max).
DEFAULT_RATES = [10000, 50000, 100000, 150000, 200000, 250000, 300000, 350000, 400000, 475000,
                 550000, 650000, 750000, 850000, 1000000, 0]
FANOUT_RATES = [2000, 5000, 10000, 15000, 20000, 25000, 30000, 35000, 40000, 50000, 60000, 70000,
                85000, 100000, 0]  # fan-out multiplies the work

SCENARIOS = {
    "S1": Scenario("S1", "64 B, 1:1, group/port translation (kernel: none)", 64, 1),
    "S2": Scenario("S2", "1316 B, 1:10 fan-out", 1316, 10, rates=FANOUT_RATES),
    "S3": Scenario("S3", "1316 B, 1:50 fan-out", 1316, 50, rates=FANOUT_RATES),
    "S4": Scenario("S4", "64 B, 100 concurrent streams (ports 5000-5099), 1:1", 64, 1, streams=100),
    "S5": Scenario("S5", "64 B, 1:1, latency at 10% of the generator's max rate", 64, 1, latency=True),
}


# --------------------------------------------------------------------------
# Relays under test. A relay is a class with:
#   cannot(sc)        -> reason string if it cannot do the scenario, else None
#   start(sc, topo, d)   start it (d: a work directory), raise on failure
#   dest(sc, k, s)    -> (group, port) that output k carries for stream s
#   pids()            -> pids whose CPU and memory are the relay's ([] if in-kernel)
#   stop()
#   info()            -> anything worth keeping in the raw JSON (e.g. counters)


class McrdRelay:
    name = "mcrd"
    cores = None  # config `cores` (list of CPUs); None = mcrd's default (all)
    kernel_fast_path = True  # data_plane.kernel_fast_path
    receive_ring = 0  # data_plane.receive_ring (slots; 0 = receive queue)

    def __init__(self):
        self.proc = None
        self.sock = None

    def cannot(self, sc):
        return None

    def dest(self, sc, k, s):
        return sc.out_group, sc.out_port + s

    def start(self, sc, topo, d):
        rules = []
        for s in range(sc.streams):
            outs = [
                {"interface": topo.out_if(k), "group": sc.out_group, "port": sc.out_port + s}
                for k in range(sc.outputs)
            ]
            rules.append({
                "name": f"{sc.id.lower()}-{s}",
                "input": {"interface": topo.in_if, "group": sc.in_group, "port": sc.in_port + s},
                "outputs": outs,
            })
        cfg = d / f"mcrd-{sc.id}.json5"
        conf = {"rules": rules, "data_plane": {"kernel_fast_path": self.kernel_fast_path}}
        if self.receive_ring:
            conf["data_plane"]["receive_ring"] = self.receive_ring
        if self.cores:
            conf["cores"] = self.cores
        cfg.write_text(json.dumps(conf, indent=1))  # JSON is JSON5
        self.sock = d / f"mcrd-{sc.id}.sock"
        self.logf = d / f"mcrd-{sc.id}.log"
        self.proc = spawn(
            ["ip", "netns", "exec", topo.rly_ns, BIN / "mcrd", "supervisor", "--config", cfg,
             "--control-socket-path", self.sock],
            stdout=open(self.logf, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if "mcrd ready" in self.logf.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"mcrd not ready: {self.logf.read_text()[-1500:]}")

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def info(self):
        try:
            return json.loads(run([BIN / "mcrctl", "--socket", self.sock, "stats", "--json"]).stdout)
        except Exception as e:  # noqa: BLE001 - diagnostics only
            return {"error": str(e)}

    def stop(self):
        if self.proc:
            stop_procs([self.proc], signal.SIGTERM, 5)
            self.proc = None


class KernelRelay:
    """The kernel's multicast forwarding (MFC), with routes installed by smcrouted."""

    name = "kernel"

    def __init__(self):
        self.proc = None
        self.topo = None

    def cannot(self, sc):
        if sc.outputs + 1 > KERNEL_MAXVIFS:
            return f"cannot: {sc.outputs} outputs + 1 input exceed the kernel's {KERNEL_MAXVIFS} multicast VIFs"
        return None

    def dest(self, sc, k, s):
        return sc.in_group, sc.in_port + s  # no translation

    def start(self, sc, topo, d):
        self.topo, self.sc = topo, sc
        conf = d / f"smcroute-{sc.id}.conf"
        lines = [f"phyint {topo.in_if} enable"]
        lines += [f"phyint {topo.out_if(k)} enable" for k in range(sc.outputs)]
        outs = " ".join(topo.out_if(k) for k in range(sc.outputs))
        # (S,G) route: installed at start, no upcall for the first packet.
        lines.append(f"mroute from {topo.in_if} source {topo.gen_addr} group {sc.in_group} to {outs}")
        conf.write_text("\n".join(lines) + "\n")
        self.logf = d / f"smcrouted-{sc.id}.log"
        self.proc = spawn(
            ["ip", "netns", "exec", topo.rly_ns, "smcrouted", "-n", "-N", "-i", f"{topo.prefix}-smc",
             "-f", conf, "-u", d / "smcroute.sock", "-P", d / "smcroute.pid", "-l", "notice"],
            stdout=open(self.logf, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            out = run(["ip", "-n", topo.rly_ns, "mroute", "show"]).stdout
            if sc.in_group in out:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"smcrouted did not install the route: {self.logf.read_text()[-1500:]}")

    def pids(self):
        return []  # forwarding runs in softirq context, charged to no relay process

    def info(self):
        r = {}
        try:
            r["mroute"] = run(["ip", "-n", self.topo.rly_ns, "-s", "mroute", "show"]).stdout
            r["mc_forwarding"] = run(["ip", "netns", "exec", self.topo.rly_ns, "cat",
                                      "/proc/sys/net/ipv4/conf/all/mc_forwarding"]).stdout.strip()
        except Exception as e:  # noqa: BLE001
            r["error"] = str(e)
        return r

    def stop(self):
        if self.proc:
            stop_procs([self.proc], signal.SIGTERM, 5)
            self.proc = None


class SocatRelay:
    """The naive relay: one socat process per (output, stream)."""

    name = "socat"

    def __init__(self):
        self.procs = []

    def cannot(self, sc):
        return None

    def dest(self, sc, k, s):
        return sc.out_group, sc.out_port + s

    def start(self, sc, topo, d):
        rcvbuf = int(Path("/proc/sys/net/core/rmem_max").read_text())  # socat has no SO_RCVBUFFORCE
        self.logf = d / f"socat-{sc.id}.log"
        logfh = open(self.logf, "w")
        for k in range(sc.outputs):
            for s in range(sc.streams):
                g, port = self.dest(sc, k, s)
                src = (f"UDP4-RECV:{sc.in_port + s},reuseaddr,"
                       f"ip-add-membership={sc.in_group}:{topo.in_addr},rcvbuf={rcvbuf}")
                dst = f"UDP4-SENDTO:{g}:{port},ip-multicast-if={topo.out_addr(k)},ip-multicast-ttl=1"
                self.procs.append(spawn(["ip", "netns", "exec", topo.rly_ns, "socat", "-u", src, dst],
                                        stdout=logfh, stderr=subprocess.STDOUT))
        time.sleep(0.3 + 0.01 * len(self.procs))
        dead = [p for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{len(dead)} socat processes exited: {self.logf.read_text()[-1500:]}")

    def pids(self):
        return [p.pid for p in self.procs]

    def info(self):
        return {"processes": len(self.procs)}

    def stop(self):
        stop_procs(self.procs, signal.SIGTERM, 3)
        self.procs = []


class McrdEnginesRelay(McrdRelay):
    """mcrd with the kernel fast path off: every packet through the engines."""

    name = "mcrd-engines"
    kernel_fast_path = False


class McrdRingRelay(McrdEnginesRelay):
    """The engines reading each input through a receive ring
    (`data_plane.receive_ring: 4096`, 6.3 MiB per engine at MTU 1,500;
    MCR_PERF_RING=SLOTS overrides)."""

    name = "mcrd-ring"
    receive_ring = int(os.environ.get("MCR_PERF_RING", "4096"))


RELAYS = {"mcrd": McrdRelay, "mcrd-engines": McrdEnginesRelay, "mcrd-ring": McrdRingRelay,
          "kernel": KernelRelay, "socat": SocatRelay}


# --------------------------------------------------------------------------
# Measurement helpers


def proc_cpu(pids):
    """utime+stime in seconds, summed over pids (each includes all its threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14, 15 of stat(5)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total / CLK_TCK


def proc_hwm_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def softnet_dropped():
    """Host-wide backlog drops (/proc/net/softnet_stat, 2nd column, all CPUs)."""
    return sum(int(line.split()[1], 16) for line in Path("/proc/net/softnet_stat").read_text().splitlines())


def system_busy():
    """Busy CPU seconds of the whole machine (all cores), from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


GEN_CPUS = None  # taskset -c LIST for mcrgen; None = let the scheduler decide
LISTEN_CPUS = None  # the same for the mcrd listen sinks


def parse_cpus(spec):
    """taskset-style list: "1", "0,2", "2-3"."""
    out = []
    for part in spec.split(","):
        a, _, b = part.strip().partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def sink_gro(sc, args):
    """Sinks merge UDP runs (and listeners read them merged) for throughput.
    A merged run shares one receive timestamp: never where latency is measured."""
    return bool(args.listen_gro) and not sc.latency


def place_sinks(topo, sc, args):
    """Where this scenario's sinks, generator and listeners run (see
    --sinks-apart): apart, the sinks' receive work and the listeners take
    args.sink_cpus and the generator (with the relay's input) the others."""
    global GEN_CPUS, LISTEN_CPUS
    apart = args.sink_cpus if sc.id in args.sinks_apart else None
    # All sinks, not only this scenario's: what is recorded is what is set.
    topo.sinks(apart, sink_gro(sc, args))
    GEN_CPUS = args.gen_cpus or (args.other_cpus if apart else None)
    LISTEN_CPUS = args.listen_cpus or apart
    return apart


def run_gen(topo, sc, rate, secs, mode, nice=0):
    # Default nice 0: a negative nice starves the relay (CFS weights) and
    # favours the kernel forwarder, whose softirq work runs in the
    # generator's context. See README "Reading the numbers".
    cmd = ["nice", "-n", nice, "ip", "netns", "exec", topo.gen_ns, BIN / "mcrgen", "--interface", topo.gen_if,
           "--group", sc.in_group, "--port", sc.in_port, "--rate", rate, "--duration", secs,
           "--size", sc.size, "--ttl", 8, "--streams", sc.streams, "--json"]
    if mode in ("gso", "af-packet"):
        cmd.append("--" + mode)
    else:
        # mcrgen picks UDP segmentation by itself where it applies.
        cmd.append("--no-gso")
    if GEN_CPUS:
        cmd = ["taskset", "-c", GEN_CPUS] + cmd
    out = run(cmd, timeout=secs + 30).stdout
    return json.loads(out.strip().splitlines()[-1])


def start_listeners(topo, sc, relay, args, d, tag):
    """One `mcrd listen` per sampled (output, stream); returns [(k, s, Popen, ready)]."""
    ls = []
    for k in sc.sampled_outputs(args.max_listeners):
        for s in sc.sampled_streams(args.max_listeners if sc.outputs == 1 else 1):
            g, port = relay.dest(sc, k, s)
            ready = d / f"ready-{tag}-{k}-{s}"
            if ready.exists():
                ready.unlink()
            gro = ["--gro"] if sink_gro(sc, args) else []
            pin = ["taskset", "-c", LISTEN_CPUS] if LISTEN_CPUS else []
            p = spawn(pin + ["nice", "-n", args.listen_nice, "ip", "netns", "exec", topo.snk_ns, BIN / "mcrd", "listen",
                       "--interface", topo.sink_if(k), "--group", g, "--port", port, "--json",
                       "--duration", args.step_secs + 60, "--ready-file", ready, "--log-level", "warn"] + gro,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            ls.append((k, s, p, ready))
    deadline = time.time() + 10
    while not all(r.exists() for _, _, _, r in ls):
        if time.time() > deadline:
            raise RuntimeError("listeners not ready")
        time.sleep(0.05)
    return ls


def stop_listeners(ls):
    res = []
    for _, _, p, _ in ls:
        p.send_signal(signal.SIGINT)
    for k, s, p, _ in ls:
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        PROCS.remove(p)
        try:
            res.append((k, s, json.loads(out.strip().splitlines()[-1])))
        except (json.JSONDecodeError, IndexError):
            res.append((k, s, {"error": (err or "")[-500:]}))
    return res


def expected_for_stream(sent, streams, s):
    return sent // streams + (1 if s < sent % streams else 0)


def wait_quiet(topo, quiet=0.3, limit=5.0):
    """Waits until no sink interface receives anything for `quiet` seconds
    (at most `limit`): an overloaded relay may still be emptying its queues
    from the previous step, and those stale packets would otherwise reach
    this step's listeners (and look like reordering: their sequence numbers
    are higher than the new step's)."""
    deadline = time.time() + limit
    last = topo.sink_rx()
    still_since = time.time()
    while time.time() < deadline:
        time.sleep(0.05)
        now = topo.sink_rx()
        if now != last:
            last = now
            still_since = time.time()
        elif time.time() - still_since >= quiet:
            return True
    return False


def measure_step(topo, sc, relay, args, d, rate, secs):
    tag = f"{sc.id}-{relay.name}"
    wait_quiet(topo)
    ls = start_listeners(topo, sc, relay, args, d, tag)
    pids = relay.pids()
    rx0, cpu0, sys0 = topo.sink_rx(), proc_cpu(pids), system_busy()
    rd0, sn0 = topo.relay_drops(), softnet_dropped()
    gen = run_gen(topo, sc, rate, secs, args.gen_mode, args.gen_nice)
    time.sleep(args.drain_secs)
    rx1, cpu1, sys1 = topo.sink_rx(), proc_cpu(pids), system_busy()
    rd1, sn1 = topo.relay_drops(), softnet_dropped()
    lres = stop_listeners(ls)

    sent = gen["sent"]
    per_out = []
    inexact = 0
    for k in range(sc.outputs):
        name = topo.sink_if(k)
        got, exact = topo.datagrams(rx0.get(name, (0, 0)), rx1.get(name, (0, 0)), sc.size)
        inexact += not exact
        per_out.append(min(got, sent))  # clamp stray packets
    if inexact:
        # The clamp above would hide an overcount: say so.
        log(f"  {inexact} sinks' byte counts are not whole datagrams (--uso count suspect)")
    wire = sum(per_out)
    expected_wire = sent * sc.outputs

    lrecv = lexp = lost = reord = dup = corrupt = 0
    lat = {"p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    lat_samples = 0
    ttl = set()
    for k, s, j in lres:
        exp = expected_for_stream(sent, sc.streams, s)
        lexp += exp
        t = j.get("total")
        if not t:
            continue
        lrecv += min(t["received"], exp)
        lost += t["lost"]
        reord += t["reordered"]
        dup += t["duplicates"]
        corrupt += t["corrupted"]
        if t.get("ttl_min") is not None:
            ttl.update({t["ttl_min"], t["ttl_max"]})
        lu = t.get("latency_us") or {}
        if lu.get("samples"):
            lat_samples += lu["samples"]
            for key in lat:
                lat[key] = max(lat[key], lu[key])  # worst sampled output
    wire_ratio = wire / expected_wire if expected_wire else 0.0
    listen_ratio = lrecv / lexp if lexp else 0.0
    cpu = cpu1 - cpu0 if pids else None
    mpkt = sent / 1e6
    step = {
        "target_pps": rate,
        "secs": secs,
        "sent": sent,
        "gen_errors": gen["errors"],
        "gen_retried": gen["retried"],
        "offered_pps": round(gen["achieved_pps"], 1),
        "offered_short": bool(rate and gen["achieved_pps"] < 0.9 * rate),  # generator starved
        "wire_delivered": wire,
        "sinks_counted_inexactly": inexact,
        "wire_ratio": round(wire_ratio, 6),
        "wire_min_output_ratio": round(min(per_out) / sent, 6) if sent else 0.0,
        "delivered_pps": round(gen["achieved_pps"] * wire_ratio, 1),
        "listeners": len(lres),
        "listener_ratio": round(listen_ratio, 6),
        "relay_if_drops": rd1 - rd0,
        "backlog_drops": sn1 - sn0,
        "lost": lost,
        "reordered": reord,
        "duplicates": dup,
        "corrupted": corrupt,
        "ttl_seen": sorted(ttl),
        "latency_us": lat if lat_samples else None,
        "relay_cpu_s": round(cpu, 3) if cpu is not None else None,
        "relay_cpu_s_per_mpkt": round(cpu / mpkt, 3) if cpu is not None and mpkt else None,
        "system_cpu_s_per_mpkt": round((sys1 - sys0) / mpkt, 3) if mpkt else None,
        "listener_raw": [{"output": k, "stream": s, "total": j.get("total"), "error": j.get("error")}
                         for k, s, j in lres],
    }
    step["pass"] = bool(sent and wire_ratio >= PASS_RATIO and listen_ratio >= PASS_RATIO
                        and reord == 0 and dup == 0 and corrupt == 0)
    return step


def calibrate(topo, sc, args):
    """Generator's max rate for this scenario's packets, with no relay running."""
    g = run_gen(topo, sc, 0, args.calib_secs, args.gen_mode, args.gen_nice)
    return g["achieved_pps"]


fmt_rate = report.fr


# --------------------------------------------------------------------------
# Running


def run_relay_scenario(topo, sc, relay, args, d, gen_max, latency_rate=None):
    r = {"relay": relay.name, "scenario": sc.id}
    why = relay.cannot(sc)
    if why:
        log(f"{sc.id} {relay.name}: {why}")
        r["status"] = "cannot"
        r["reason"] = why
        return r
    try:
        relay.start(sc, topo, d)
        time.sleep(args.settle_secs)
        # Idle cost, and how busy the rest of the machine is (other users skew everything).
        pids = relay.pids()
        c0, s0, t0 = proc_cpu(pids), system_busy(), time.time()
        time.sleep(args.idle_secs)
        dt = time.time() - t0
        r["idle_relay_cpu_pct"] = round(100 * (proc_cpu(pids) - c0) / dt, 1) if pids else None
        r["idle_system_busy_pct"] = round(100 * (system_busy() - s0) / dt, 1)
        # Does it relay at all? (cheap check before spending a ladder on it)
        warm = measure_step(topo, sc, relay, args, d, 5000, 0.2)
        if warm["wire_ratio"] < 0.5:
            time.sleep(1)
            warm = measure_step(topo, sc, relay, args, d, 5000, 0.2)
        r["warmup"] = {k: warm[k] for k in ("sent", "wire_ratio", "listener_ratio")}
        if warm["wire_ratio"] < 0.5:
            r["status"] = "failed"
            r["reason"] = f"relays nothing (warm-up delivered {warm['wire_ratio']:.1%})"
            log(f"{sc.id} {relay.name}: {r['reason']}")
            return r
        steps = []
        if sc.latency:
            rates = [round(latency_rate)]
            secs = args.latency_secs
        else:
            ladder = args.rates or sc.rates
            rates = [x for x in ladder if x != 0 and x < 0.95 * gen_max] + [0]
            secs = args.step_secs
        fails = 0
        for rate in rates:
            if fails >= 2 and rate != 0:
                continue  # two failures in a row: the rest of the ladder would fail too
            st = measure_step(topo, sc, relay, args, d, rate, secs)
            fails = 0 if st["pass"] else fails + 1
            steps.append(st)
            lat = st["latency_us"] or {}
            log(f"{sc.id} {relay.name:6s} target {fmt_rate(rate) if rate else 'max':>6s} "
                f"offered {fmt_rate(st['offered_pps']):>7s} wire {st['wire_ratio']:.4f} "
                f"listen {st['listener_ratio']:.4f} reord {st['reordered']} "
                f"cpu/Mpkt {st['relay_cpu_s_per_mpkt']} p99 {lat.get('p99', '-')}us "
                f"{'PASS' if st['pass'] else 'fail'}")
            time.sleep(0.3)
        r["steps"] = steps
        r["peak_rss_kib"] = proc_hwm_kib(relay.pids()) if relay.pids() else None
        r["info"] = relay.info()
        r["status"] = "ok"
        passing = [s for s in steps if s["pass"]]
        best = max(passing, key=lambda s: s["offered_pps"]) if passing else None
        r["max_pass_pps"] = best["offered_pps"] if best else None
        # The relay may do more: it kept up with all the generator could offer.
        r["max_pass_is_gen_limited"] = bool(best and (best["target_pps"] == 0 or best["offered_short"]
                                                      or any(s["pass"] for s in steps if s["target_pps"] == 0)))
    except Exception as e:  # noqa: BLE001 - one relay failing must not stop the run
        r["status"] = "error"
        r["reason"] = str(e)[-2000:]
        log(f"{sc.id} {relay.name}: ERROR {e}")
    finally:
        relay.stop()
    return r


BACKLOG = Path("/proc/sys/net/core/netdev_max_backlog")


def raise_backlog(frames):
    """Raises net.core.netdev_max_backlog (host-wide: the frames a CPU's
    shared receive backlog holds) to at least `frames` while this run
    lasts; returns (value to restore, value written), or None if it was
    left alone."""
    old = int(BACKLOG.read_text())
    if old >= frames:
        return None
    BACKLOG.write_text(f"{frames}\n")
    log(f"net.core.netdev_max_backlog {old} -> {frames} for this run (--uso)")
    return old, frames


def restore_sysctl(path, old, written):
    """Puts `old` back, unless someone changed the value since we wrote it."""
    try:
        if int(path.read_text()) == written:
            path.write_text(f"{old}\n")
            log(f"{path.name} restored to {old}")
        else:
            log(f"{path.name} changed by someone else since this run set it; left as it is")
    except OSError as e:
        log(f"{path.name} not restored to {old}: {e}")


def set_autogroup_nice(value):
    """Sets this process's scheduler autogroup nice (sched(7), "The autogroup
    feature"); returns the previous value, or None when not done ('off', no
    autogroups, or refused)."""
    f = Path("/proc/self/autogroup")
    if str(value).lower() == "off" or not f.exists():
        return None
    if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
        return None
    try:
        before = f.read_text().split("nice")[1].strip()
        f.write_text(str(int(value)))
        return before
    except (OSError, IndexError, ValueError) as e:
        log(f"autogroup nice not set: {e}")
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="S1,S2,S3,S4,S5", help="comma-separated: S1..S5")
    ap.add_argument("--relays", default=",".join(RELAYS), help="comma-separated: " + ",".join(RELAYS))
    ap.add_argument("--rates", default=None,
                    help="offered-rate ladder in pps for every scenario; 'max' = as fast as mcrgen can "
                         "(default: 10000,50000,100000,200000,400000,700000,1000000,max; S2 and S3: "
                         "2000,5000,10000,20000,50000,100000,max). Steps at or above 95%% of the "
                         "generator's measured max are skipped; max is always run.")
    ap.add_argument("--step-secs", type=float, default=3.0, help="traffic per ladder step")
    ap.add_argument("--latency-secs", type=float, default=5.0, help="traffic in the latency scenario")
    ap.add_argument("--latency-fraction", type=float, default=0.10,
                    help="latency scenario (S5) rate as a fraction of the maximum rate: the best "
                         "S1 rate of this run, or the generator's max when S1 did not run")
    ap.add_argument("--latency-rate", type=float, default=None, help="S5 rate in pps (overrides)")
    ap.add_argument("--gen-nice", type=int, default=0, help="nice value of mcrgen")
    ap.add_argument("--listen-nice", type=int, default=0, help="nice value of the mcrd listen sinks")
    ap.add_argument("--calib-secs", type=float, default=1.5)
    ap.add_argument("--drain-secs", type=float, default=0.5)
    ap.add_argument("--settle-secs", type=float, default=0.5)
    ap.add_argument("--idle-secs", type=float, default=1.0, help="idle CPU measurement per relay start")
    ap.add_argument("--max-listeners", type=int, default=10, help="listeners per scenario (sampled)")
    ap.add_argument("--listen-cpus", default=None,
                    help="pin the mcrd listen sinks with taskset -c LIST (default: the sinks' CPUs "
                         "when they stand apart, else unpinned)")
    ap.add_argument("--listen-gro", type=int, choices=[0, 1], default=1,
                    help="sinks merge runs of UDP datagrams (GRO) before IP, and the listeners take them "
                         "merged (mcrd listen --gro) outside the latency scenario")
    ap.add_argument("--uso", action="store_true",
                    help="the relay's outputs stand for NICs with UDP segmentation offload: their veths "
                         "keep tx-udp-segmentation on, so a UDP GSO frame (a batch from mcrd's engines "
                         "with a receive ring, which are told to batch to them with MCR_BATCH=every) "
                         "reaches its sink whole, and sinks count datagrams by payload bytes, not frames")
    ap.add_argument("--gen-mode", choices=["gso", "af-packet", "udp"], default="gso",
                    help="mcrgen's send path: gso (UDP segmentation batches, the fastest: about "
                         "1.8 Mpps of 64-byte packets here), af-packet (prebuilt frames, ~0.7 Mpps) "
                         "or udp (one datagram per sendmmsg entry, ~0.4 Mpps)")
    ap.add_argument("--mcrd-cores", default=None, help="mcrd config `cores`, e.g. 1 or 0,1")
    ap.add_argument("--gen-cpus", default=None,
                    help="pin mcrgen with taskset -c LIST, e.g. 0 (default: the CPUs the sinks "
                         "do not take when they stand apart, else unpinned)")
    ap.add_argument("--sinks-apart", default="S3",
                    help="scenarios (comma-separated, or 'none') whose sinks receive on their own "
                         "CPU (--sink-cpus, by receive packet steering) instead of in the "
                         "sender's context. Default S3: its 50 sinks stand for 50 other hosts")
    ap.add_argument("--sink-cpus", default=None,
                    help="CPUs for sinks apart (default: the last CPU)")
    ap.add_argument("--autogroup-nice", default="-20",
                    help="nice value of this run's scheduler autogroup while it runs (every process "
                         "it starts inherits it), or 'off'. With autogroups (Linux default), each "
                         "session shares the CPUs equally whatever its processes' nice values, so "
                         "background work in other sessions (a build) would take a pinned relay's "
                         "CPU; restored on exit")
    ap.add_argument("--prefix", default=f"pf{os.getpid()}")
    ap.add_argument("--out", default=None, help="results directory (default perf/results/<timestamp>)")
    ap.add_argument("--command", default=None, help="command line to record (set by run.sh)")
    args = ap.parse_args()
    if args.rates:
        args.rates = [0 if x.strip() == "max" else int(x) for x in args.rates.split(",")]
    scen = [SCENARIOS[s.strip().upper()] for s in args.scenario.split(",")]
    if args.mcrd_cores:
        McrdRelay.cores = [int(c) for c in args.mcrd_cores.split(",")]
    usable = sorted(os.sched_getaffinity(0))  # the CPUs this run may use
    args.sinks_apart = [] if args.sinks_apart.strip().lower() == "none" else \
        sorted({x.strip().upper() for x in args.sinks_apart.split(",")})
    unknown = [x for x in args.sinks_apart if x not in SCENARIOS]
    if unknown:
        ap.error(f"--sinks-apart: no scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)}, or none)")
    if len(usable) < 2:
        args.sinks_apart = []  # nowhere to put them apart
    sink_set = parse_cpus(args.sink_cpus) if args.sink_cpus else usable[-1:]
    args.sink_cpus = ",".join(str(c) for c in sink_set)
    args.other_cpus = ",".join(str(c) for c in usable if c not in sink_set) or None
    relays = [RELAYS[r.strip()]() for r in args.relays.split(",")]

    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else HERE / "results" / ts
    out.mkdir(parents=True, exist_ok=True)
    work = Path(f"/tmp/{args.prefix}")
    work.mkdir(exist_ok=True)

    nout = max(sc.outputs for sc in scen)
    topo = Topo(args.prefix, nout, args.uso)
    if args.uso:
        # mcrd's engines batch only to outputs that cut batches on the
        # relay's side; these veths stand for NICs that cut them on the wire.
        if os.environ.get("MCR_BATCH", "every") != "every":
            ap.error(f"--uso sets MCR_BATCH=every; MCR_BATCH={os.environ['MCR_BATCH']} is set")
        os.environ["MCR_BATCH"] = "every"
    t0 = time.time()
    meta = {
        "started": ts,
        "command": args.command or " ".join(sys.argv),
        "git": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip(),
        "git_dirty": bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                          "cli", "dataplane", "controlplane", "config"],
                                         capture_output=True, text=True).stdout.strip()),
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "rmem_max": int(Path("/proc/sys/net/core/rmem_max").read_text()),
        "settings": {k: v for k, v in vars(args).items() if k not in ("command",)},
    }
    results = {"meta": meta, "generator_max_pps": {}, "runs": []}
    restore_autogroup = set_autogroup_nice(args.autogroup_nice)
    meta["autogroup_nice"] = None if restore_autogroup is None else args.autogroup_nice
    meta["mcr_batch"] = os.environ.get("MCR_BATCH")
    restore_backlog = None

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        if args.uso:
            # Sinks apart have GRO off and share their CPU's backlog instead
            # of a NAPI ring of 256 frames each: give that backlog what the
            # rings held.
            restore_backlog = raise_backlog(256 * nout)
            meta["netdev_max_backlog"] = int(BACKLOG.read_text())
        log(f"topology {args.prefix}: 1 input, {nout} outputs; results in {out}")
        topo.up()
        for sc in scen:
            apart = place_sinks(topo, sc, args)
            results.setdefault("sinks", {})[sc.id] = {
                "apart_on_cpus": apart, "gro": sink_gro(sc, args) and topo.sink_napi, "napi": topo.sink_napi,
                "gen_cpus": GEN_CPUS, "listen_cpus": LISTEN_CPUS}
            gen_max = calibrate(topo, sc, args)
            results["generator_max_pps"][sc.id] = round(gen_max, 1)
            log(f"{sc.id}: {sc.title}; generator max {fmt_rate(gen_max)} pps")
            lat_rate = None
            if sc.latency:
                s1 = [r["max_pass_pps"] for r in results["runs"]
                      if r["scenario"] == "S1" and r.get("max_pass_pps")]
                base, src = (max(s1), "best S1 rate") if s1 else (gen_max, "generator max")
                lat_rate = args.latency_rate or base * args.latency_fraction
                results["latency_rate"] = {"pps": round(lat_rate), "from": src if not args.latency_rate
                                           else "--latency-rate", "base_pps": round(base)}
                log(f"{sc.id}: {fmt_rate(lat_rate)} pps = {args.latency_fraction:.0%} of {src} {fmt_rate(base)}")
            for relay in relays:
                results["runs"].append(run_relay_scenario(topo, sc, relay, args, work, gen_max, lat_rate))
                (out / "results.json").write_text(json.dumps(results, indent=1))
    except KeyboardInterrupt:
        log("interrupted; tearing down")
        meta["interrupted"] = True
    finally:
        # Teardown runs to the end: a second Ctrl-C or SIGTERM must not skip
        # restoring what this run changed host-wide.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if restore_backlog is not None:
            restore_sysctl(BACKLOG, *restore_backlog)
        stop_procs(list(PROCS), signal.SIGTERM, 3)
        topo.down()
        meta["wall_secs"] = round(time.time() - t0, 1)
        meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        (out / "results.json").write_text(json.dumps(results, indent=1))
        for f in work.glob("*.log"):
            shutil.copy(f, out / f.name)
        shutil.rmtree(work, ignore_errors=True)
        if restore_autogroup is not None:
            set_autogroup_nice(restore_autogroup)
    report.write(results, out)
    log(f"done in {meta['wall_secs']} s: {out / 'report.md'}")
    return 130 if meta.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
