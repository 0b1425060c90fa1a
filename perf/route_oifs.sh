#!/usr/bin/env bash
# A route past the kernel's 32 vifs, forwarded by mcr's engines: an IGMP
# proxy with N downstream interfaces (default 40), a member on each, one
# source upstream sending 64-byte UDP as fast as mcrgen can. Prints the
# packets/s the route took (mcrctl mroute) and the frames/s that reached
# the receivers (rx_packets of the N receiving veth ends).
# Usage (root):
#   perf/route_oifs.sh [N]               default 40
#   PROFILE=release perf/route_oifs.sh   (default: debug)
#   SECS=5 perf/route_oifs.sh            (length of the run)
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
bin=target/$profile
[ -x "$bin/mcrd" ] && [ -x "$bin/mcrctl" ] && [ -x "$bin/mcrgen" ] ||
    cargo build ${profile/debug/} ${profile/release/--release} -p mcr-cli -p mcr-traffic
n=${1:-40}
secs=${SECS:-5}
t="ro$$"
dir=$(mktemp -d)
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ -n "${joiner:-}" ] && kill "$joiner" 2>/dev/null || true
    for x in up r h; do ip netns del "$t-$x" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
for x in up r h; do ip netns add "$t-$x"; ip -n "$t-$x" link set lo up; done
ip -n "$t-r" link add ru type veth peer name u netns "$t-up"
ip -n "$t-r" addr add 10.81.0.1/24 dev ru
ip -n "$t-up" addr add 10.81.0.2/24 dev u
ip -n "$t-r" link set ru up
ip -n "$t-up" link set u up
ip -n "$t-up" route add default via 10.81.0.1
down=""
for i in $(seq 0 $((n - 1))); do
    ip -n "$t-r" link add "d$i" type veth peer name "h$i" netns "$t-h"
    ip -n "$t-r" addr add "10.91.$i.1/24" dev "d$i"
    ip -n "$t-h" addr add "10.91.$i.2/24" dev "h$i"
    ip -n "$t-r" link set "d$i" up
    ip -n "$t-h" link set "h$i" up
    down="$down${down:+, }\"d$i\""
done
cat > "$dir/mcrd.json5" <<EOF2
{ igmp: { version: 3, query_interval: 125, query_response_interval: 10,
          proxy: { upstream: "ru", downstream: [$down] } },
  data_plane: { kernel_fast_path: false } }
EOF2
ip netns exec "$t-r" "$bin/mcrd" --log-level warn supervisor --config "$dir/mcrd.json5" \
    --control-socket-path "$dir/mcrd.sock" 2>"$dir/mcrd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/mcrd.sock" ] && break; sleep 0.1; done
ctl() { "$bin/mcrctl" --socket "$dir/mcrd.sock" "$@"; }
ctl status >/dev/null
mkfifo "$dir/hold"
# The script from a file: stdin is the fifo that holds the memberships.
cat > "$dir/join.py" <<'PY'
import socket, sys
socks = []
for i in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton("239.91.1.1") + socket.inet_aton(f"10.91.{i}.2"))
    socks.append(s)
sys.stdin.read()
PY
ip netns exec "$t-h" python3 "$dir/join.py" "$n" <"$dir/hold" &
joiner=$!
exec 9>"$dir/hold"
route() { ctl --json mroute | python3 -c 'import json,sys
r=[x for x in json.load(sys.stdin)["routes"] if x["group"]=="239.91.1.1"]
print(r[0]["installed"], len(r[0]["oifs"]), r[0]["packets"]) if r else print("none 0 0")'; }
for _ in $(seq 300); do
    set -- $(route)
    [ "$2" -ge "$n" ] && break
    sleep 0.1
done
echo "route: installed $1, $2 oifs"
rx() { local s=0 i; for i in $(seq 0 $((n - 1))); do
    s=$((s + $(ip netns exec "$t-h" cat "/sys/class/net/h$i/statistics/rx_packets"))); done; echo $s; }
rx0=$(rx); set -- $(route); p0=$3
ip netns exec "$t-up" "$bin/mcrgen" --json --interface u --group 239.91.1.1 --port 5001 \
    --ttl 8 --size 64 --duration "$secs" >"$dir/gen.json"
sleep 1
rx1=$(rx); set -- $(route); p1=$3
sent=$(python3 -c "import json; d=json.load(open('$dir/gen.json')); print(d.get('sent', d.get('total', {}).get('sent', 0)))" 2>/dev/null || echo '?')
python3 - "$sent" "$p0" "$p1" "$rx0" "$rx1" "$secs" "$n" <<'PY'
import sys
sent, p0, p1, r0, r1, secs, n = sys.argv[1], *map(int, sys.argv[2:])
taken, out = p1 - p0, r1 - r0
print(f"sent {sent}; route took {taken} ({taken / secs:.0f} pps); "
      f"{out} frames received over {n} oifs ({out / secs:.0f} frames/s, "
      f"{out / max(taken, 1):.2f} per packet taken)")
PY
ctl --json stats | python3 -c 'import json,sys; d=json.load(sys.stdin)["drops"]; print("drops:", {k: v for k, v in d.items() if v})'
