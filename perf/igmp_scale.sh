#!/usr/bin/env bash
# IGMP scale: 10,000 groups on 10 interfaces (1,000 each) joined and left by
# generated IGMPv2 reports and leaves, sent back to back from a host
# namespace. Measures (root):
#   - reports/s processed (wall: first report sent -> every group in
#     `mcrctl igmp groups`; and per CPU-second of mcrd's control thread),
#   - mcrd's RSS before and with 10,000 groups,
#   - time from one more report to the table swap that adds a `when:
#     "members"` output (visible in `mcrctl stats`), with the 10,000 groups
#     held, and from its leave to the swap that removes it,
#   - time from 10,000 leaves to no group left (last member query time is
#     2 x 100 ms).
# Usage: perf/igmp_scale.sh [GROUPS_PER_INTERFACE]   (default 1000)
# Binaries: target/release (built if missing), or BIN=target/debug.
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "run as root (creates network namespaces)" >&2; exit 2; fi
BIN=${BIN:-target/release}
[ -x "$BIN/mcrd" ] || cargo build --release -p mcr-cli --bin mcrd --bin mcrctl
per=${1:-1000}
nif=10
total=$((per * nif))
r="is$$r"; h="is$$h"
dir=$(mktemp -d)
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    ip netns del "$r" 2>/dev/null || true
    ip netns del "$h" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$r"; ip netns add "$h"
ip -n "$r" link set lo up
ifs=()
for k in $(seq 0 $((nif - 1))); do
    ip -n "$r" link add "r$k" type veth peer name "h$k" netns "$h"
    ip -n "$r" addr add "10.90.$k.1/24" dev "r$k"
    ip -n "$h" addr add "10.90.$k.2/24" dev "h$k"
    ip -n "$r" link set "r$k" up; ip -n "$h" link set "h$k" up
    ifs+=("\"r$k\"")
done
# An input interface for the rule whose output follows membership on r0.
ip -n "$r" link add rin type veth peer name rin-p
ip -n "$r" link set rin up; ip -n "$r" link set rin-p up
cat > "$dir/c.json5" <<EOF
{
  rules: [ { name: "follow", input: { interface: "rin", group: "239.1.1.1", port: 5000 },
             outputs: [ { interface: "r0", group: "239.200.0.1", port: 6000, when: "members" } ] } ],
  igmp: { querier_interfaces: [$(IFS=,; echo "${ifs[*]}")], version: 2,
          query_interval: 125, query_response_interval: 10, robustness: 2,
          last_member_query_interval_ms: 100 },
}
EOF
ip netns exec "$r" "$BIN/mcrd" supervisor --config "$dir/c.json5" \
    --control-socket-path "$dir/s.sock" 2> "$dir/log" &
pid=$!
ctl() { "$BIN/mcrctl" --socket "$dir/s.sock" "$@"; }
for _ in $(seq 100); do ctl ping >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
now() { date +%s%N; }  # same clock as python's time.time_ns()
# grep/awk, not python: a python start costs up to 0.5 s on a loaded box.
groups() { ctl --json igmp interfaces | grep -o '"groups":[0-9]*' | awk -F: '{s += $2} END {print s + 0}'; }
wait_groups() { # TARGET
    while [ "$(groups)" != "$1" ]; do sleep 0.02; done
}

# Sender: prebuilt IGMPv2 messages (IPv4 with Router Alert), AF_PACKET.
cat > "$dir/send.py" <<'PY'
import socket, struct, sys
kind, per, nif = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
def frame(src, dst, igmp):
    h = struct.pack('!BBHHHBBH4s4s', 0x46, 0xc0, 24 + len(igmp), 0, 0, 1, 2, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + b'\x94\x04\x00\x00'
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + igmp
def v2(t, g):
    b = struct.pack('!BBH4s', t, 0, 0, socket.inet_aton(g))
    return b[:2] + struct.pack('!H', csum(b)) + b[4:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
msgs = []
for k in range(nif):
    for i in range(per):
        g = '239.%d.%d.%d' % (10 + k, i // 250, i % 250 + 1)
        o = socket.inet_aton(g)
        mac = bytes([1, 0, 0x5e, o[1] & 0x7f, o[2], o[3]])
        if kind == 'join':
            msgs.append((frame('10.90.%d.2' % k, g, v2(0x16, g)), ('h%d' % k, 0x0800, 0, 0, mac)))
        else:
            msgs.append((frame('10.90.%d.2' % k, '224.0.0.2', v2(0x17, g)),
                         ('h%d' % k, 0x0800, 0, 0, bytes([1, 0, 0x5e, 0, 0, 2]))))
import time
print(time.time_ns(), flush=True)
for m, a in msgs:
    s.sendto(m, a)
print(time.time_ns(), flush=True)
PY
one() { # join|leave GROUP on h0
    ip netns exec "$h" python3 - "$1" "$2" <<'PY'
import socket, struct, sys
kind, g = sys.argv[1], sys.argv[2]
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
ty, dst = (0x16, g) if kind == 'join' else (0x17, '224.0.0.2')
b = struct.pack('!BBH4s', ty, 0, 0, socket.inet_aton(g)); b = b[:2] + struct.pack('!H', csum(b)) + b[4:]
h = struct.pack('!BBHHHBBH4s4s', 0x46, 0xc0, 32, 0, 0, 1, 2, 0, socket.inet_aton('10.90.0.2'), socket.inet_aton(dst)) + b'\x94\x04\x00\x00'
h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
o = socket.inet_aton(dst)
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
import time
print(time.time_ns(), flush=True)
s.sendto(h + b, ('h0', 0x0800, 0, 0, bytes([1, 0, 0x5e, o[1] & 0x7f, o[2], o[3]])))
PY
}
outputs() { ctl --json stats | grep -o '"output":"' | wc -l; }
ms() { echo "scale=1; ($2 - $1) / 1000000" | bc; }

sleep 1
rss0=$(rss)
c0=$(cpu_ticks)
ts=($(ip netns exec "$h" python3 "$dir/send.py" join "$per" "$nif")); t0=${ts[0]}; t_sent=${ts[1]}
if [ -n "${TRACE:-}" ]; then
    for _ in $(seq 30); do echo "$(( ($(now) - t0) / 1000000 )) ms: $(ctl --json igmp interfaces | grep -o '"v2_reports_received":[0-9]*' | awk -F: '{s += $2} END {print s + 0}') reports" >&2; sleep 0.05; done
fi
wait_groups "$total"
t1=$(now)
c1=$(cpu_ticks)
rss1=$(rss)
hz=$(getconf CLK_TCK)
join_ms=$(ms "$t0" "$t1")
send_ms=$(ms "$t0" "$t_sent")
cpu_s=$(echo "scale=3; ($c1 - $c0) / $hz" | bc)

# One more group, followed by an output: report -> table swap -> leave.
[ "$(outputs)" = 0 ]
t2=$(one join 239.200.0.1)
while [ "$(outputs)" != 1 ]; do sleep 0.005; done
t3=$(now)
t3b=$(one leave 239.200.0.1)
while [ "$(outputs)" != 0 ]; do sleep 0.005; done
t4=$(now)

ts=($(ip netns exec "$h" python3 "$dir/send.py" leave "$per" "$nif")); t5=${ts[0]}
wait_groups 0
t6=$(now)
sent=$(ctl --json igmp interfaces | python3 -c 'import json,sys; print(sum(i["counters"]["group_queries_sent"] for i in json.load(sys.stdin)["interfaces"]))')

echo "| groups | interfaces | sender time | all groups learned | reports/s (wall) | mcrd CPU | reports per CPU-s | RSS before | RSS with groups | report -> swap (output added) | leave -> swap (output removed, LMQT 200 ms) | $total leaves -> no group | group queries sent |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '| %d | %d | %s ms | %s ms | %.0f | %s s | %s | %s KiB | %s KiB | %s ms | %s ms | %s ms | %s |\n' \
    "$total" "$nif" "$send_ms" "$join_ms" "$(echo "$total * 1000 / $join_ms" | bc -l)" "$cpu_s" \
    "$( [ "$cpu_s" = "0" ] && echo - || echo "$total / $cpu_s" | bc)" \
    "$rss0" "$rss1" "$(ms "$t2" "$t3")" "$(ms "$t3b" "$t4")" "$(ms "$t5" "$t6")" "$sent"
