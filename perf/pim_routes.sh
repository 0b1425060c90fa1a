#!/usr/bin/env bash
# PIM routes through the kernel MFC (issue #17):
#  1. 10,000 (S,G) Joins from a downstream PIM neighbour (python, raw
#     socket: one Hello, then Join/Prune messages of 50 (S,G) each) to
#     10,000 (S,G) entries in `ip mroute show` (J/P -> tree state -> MRIB
#     -> MRT_ADD_MFC), timed from the first Join sent.
#  2. The rate one of those (S,G) routes forwards (mcrd holding the mroute
#     socket), then the same (S,G) as a static smcroute route (mcrd
#     stopped, smcrouted holding the socket), same traffic, same run: the
#     same kernel path, so the ratio should be ~1.
# Usage (root):
#   perf/pim_routes.sh [ROUTES]                 default 10000
#   PROFILE=release perf/pim_routes.sh          (binaries in target/bench/release,
#                                                else target/debug)
#   SECS=5 RUNS=3 perf/pim_routes.sh            (length and number of each rate run)
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
if [ "$profile" = release ]; then bin=target/bench/release; else bin=target/debug; fi
[ -x "$bin/mcrd" ] && [ -x "$bin/mcrctl" ] && [ -x "$bin/mcrgen" ] || {
    echo "build first: CARGO_TARGET_DIR=target/bench cargo build --release -p mcr-cli -p mcr-traffic" >&2
    exit 1
}
routes=${1:-10000}
secs=${SECS:-5}
t="pr$$"
dir=$(mktemp -d)
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ -n "${smc:-}" ] && kill "$smc" 2>/dev/null && wait "$smc" 2>/dev/null || true
    for n in up r p; do ip netns del "$t-$n" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
for n in up r p; do ip netns add "$t-$n"; ip -n "$t-$n" link set lo up; done
ip -n "$t-r" link add ru type veth peer name u netns "$t-up"
ip -n "$t-r" link add rp type veth peer name p netns "$t-p"
# The sources are on the upstream link (a /16: RPF is the connected route).
ip -n "$t-r" addr add 10.95.0.1/16 dev ru
ip -n "$t-up" addr add 10.95.0.2/16 dev u
ip -n "$t-up" addr add 10.95.1.1/16 dev u
ip -n "$t-r" addr add 10.96.0.1/24 dev rp
ip -n "$t-p" addr add 10.96.0.9/24 dev p
for x in "r ru" "r rp" "up u" "p p"; do set -- $x; ip -n "$t-$1" link set "$2" up; done
ip -n "$t-p" route add default via 10.96.0.1
cat > "$dir/mcrd.json5" <<EOF2
{ pim: { enabled: true, interfaces: [ { name: "ru" }, { name: "rp" } ], rp_address: "10.96.0.1",
         static_rp: [ { group: "239.0.0.0/8", rp: "10.96.0.1" } ] },
  control_plane: { rpf_provider: "kernel" },
  data_plane: { kernel_fast_path: false } }
EOF2
ip netns exec "$t-r" "$bin/mcrd" --log-level warn supervisor --config "$dir/mcrd.json5" \
    --control-socket-path "$dir/mcrd.sock" 2>"$dir/mcrd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/mcrd.sock" ] && break; sleep 0.1; done
ctl() { "$bin/mcrctl" --timeout 60 --socket "$dir/mcrd.sock" "$@"; }
ctl status >/dev/null

cat > "$dir/pim.py" <<'PY'
import socket, struct, sys, time
dev, me, them, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def pim(body, typ):
    m = bytes([(2 << 4) | typ, 0, 0, 0]) + body
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]
def ip(dst, payload):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0xc0, 20 + len(payload), 0, 0, 1, 103, 0,
                       socket.inet_aton(me), socket.inet_aton(dst)) + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
mc = lambda p: s.sendto(ip("224.0.0.13", p), ("224.0.0.13", 0))
hello = struct.pack("!HHH", 1, 2, 105) + struct.pack("!HHI", 19, 4, 1) + struct.pack("!HHI", 20, 4, 77)
mc(pim(hello, 0))
time.sleep(1)
t0 = time.time()
per = 50
for m in range(0, n, per):
    body = struct.pack("!BB4s", 1, 0, socket.inet_aton(them)) + struct.pack("!BBH", 0, min(per, n - m), 210)
    for i in range(m, min(n, m + per)):
        g = "239.100.%d.%d" % (i >> 8, i & 255)
        sa = "10.95.%d.%d" % (1 + i // 250, 1 + i % 250)
        body += struct.pack("!BBBB4s", 1, 0, 0, 32, socket.inet_aton(g)) + struct.pack("!HH", 1, 0)
        body += struct.pack("!BBBB4s", 1, 0, 4, 32, socket.inet_aton(sa))
    mc(pim(body, 3))
print("%.6f %.6f" % (t0, time.time()), flush=True)
PY
entries() { ip netns exec "$t-r" ip mroute show | grep -c '^(' || true; }
read -r t0 t1 < <(ip netns exec "$t-p" python3 "$dir/pim.py" p 10.96.0.9 10.96.0.1 "$routes")
deadline=$(( $(date +%s) + 120 ))
n=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    n=$(entries)
    [ "$n" -ge "$routes" ] && break
    sleep 0.05
done
t2=$(date +%s.%N)
shown=$(ctl --json mroute | python3 -c 'import json,sys; r=json.load(sys.stdin)["routes"]; print(sum(1 for x in r if x["installed"]=="kernel"), len(r))')
printf 'pim routes: %d (S,G) Joins sent in %.2f s; %d in ip mroute show %.2f s after the first Join (mcrctl mroute: installed/total %s)\n' \
    "$routes" "$(echo "$t1 - $t0" | bc)" "$n" "$(echo "$t2 - $t0" | bc)" "$shown"
has_route() { ip netns exec "$t-r" ip mroute show >"$dir/mroute.txt"; grep -q '(10.95.1.1,239.100.0.0)' "$dir/mroute.txt"; }
has_route || { echo "error: (10.95.1.1,239.100.0.0) not in the kernel" >&2; exit 1; }

# Routed rate of one of them: 239.100.0.0 from 10.95.1.1, out on rp.
rate() { # label -> pps on stdout (also printed on stderr)
    local out
    out=$(ip netns exec "$t-p" "$bin/mcrd" listen --json --interface p --group 239.100.0.0 \
        --port 5001 --duration $((secs + 2)) &
        sleep 1
        ip netns exec "$t-up" "$bin/mcrgen" --json --interface 10.95.1.1 --group 239.100.0.0 --port 5001 \
            --ttl 8 --size 64 --duration "$secs" >/dev/null 2>&1
        wait)
    echo "$out" | python3 -c "import json,sys; t=json.load(sys.stdin)['total']; r=t['received']/$secs
print('$1: %d packets in $secs s, %.0f pps, ttl %s..%s' % (t['received'], r, t['ttl_min'], t['ttl_max']), file=sys.stderr); print('%.0f' % r)"
}
# RUNS runs each (default 3), the median compared: the machine is shared.
runs=${RUNS:-3}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
m=""
for _ in $(seq "$runs"); do m="$m $(rate "routed by the PIM (S,G) route of mcrd (kernel MFC)")"; done
mcr=$(echo $m | median)
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
# The same (S,G) as a static smcroute route.
printf 'phyint ru enable\nphyint rp enable\nmroute from ru source 10.95.1.1 group 239.100.0.0 to rp\n' >"$dir/smcroute.conf"
ip netns exec "$t-r" smcrouted -n -N -l none -f "$dir/smcroute.conf" -u "$dir/smc.sock" -P "$dir/smc.pid" &
smc=$!
for _ in $(seq 50); do has_route && break; sleep 0.1; done
has_route || { echo "error: smcroute did not install the route" >&2; exit 1; }
k=""
for _ in $(seq "$runs"); do k="$k $(rate "routed by a static smcroute (S,G) route (kernel MFC)")"; done
kern=$(echo $k | median)
python3 -c "print('median pps: mcrd %d, smcroute %d; mcrd / smcroute rate ratio: %.2f' % ($mcr, $kern, $mcr / $kern))"
