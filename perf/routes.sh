#!/usr/bin/env bash
# Routes through the kernel MFC: time from 10,000 source-specific joins on
# a downstream host to 10,000 (S,G) entries in `ip mroute show` (IGMP
# proxy: IGMPv3 reports -> membership -> MRIB -> MRT_ADD_MFC), then the
# rate one routed (S,G) forwards against the same traffic relayed by a
# rule (a relay rule on the route's iif and group has precedence: the
# route is withdrawn from the kernel while the rule exists).
# Usage (root):
#   perf/routes.sh [GROUPS SOURCES_PER_GROUP]   default: 1000 10 (10,000 routes)
#   PROFILE=release perf/routes.sh              (default: debug)
#   SECS=5 perf/routes.sh                       (length of each rate run)
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
bin=target/$profile
[ -x "$bin/mcrd" ] && [ -x "$bin/mcrctl" ] && [ -x "$bin/mcrgen" ] ||
    cargo build ${profile/debug/} ${profile/release/--release} -p mcr-cli -p mcr-traffic
groups=${1:-1000}
per=${2:-10}
secs=${SECS:-5}
t="rt$$"
dir=$(mktemp -d)
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ -n "${joiner:-}" ] && kill "$joiner" 2>/dev/null || true
    for n in up r h; do ip netns del "$t-$n" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
for n in up r h; do ip netns add "$t-$n"; ip -n "$t-$n" link set lo up; done
ip -n "$t-r" link add ru type veth peer name u netns "$t-up"
ip -n "$t-r" link add ra type veth peer name ha netns "$t-h"
ip -n "$t-r" addr add 10.91.0.1/24 dev ru
ip -n "$t-up" addr add 10.91.0.2/24 dev u
ip -n "$t-r" addr add 10.92.0.1/24 dev ra
ip -n "$t-h" addr add 10.92.0.2/24 dev ha
for x in "r ru" "r ra" "up u" "h ha"; do set -- $x; ip -n "$t-$1" link set "$2" up; done
ip -n "$t-up" route add default via 10.91.0.1
for n in r h; do
    ip netns exec "$t-$n" sysctl -qw net.ipv4.igmp_max_memberships=200000 net.ipv4.igmp_max_msf=1024
done
cat > "$dir/mcrd.json5" <<EOF2
{ igmp: { version: 3, query_interval: 125, query_response_interval: 10,
          proxy: { upstream: "ru", downstream: ["ra"] } },
  data_plane: { kernel_fast_path: false } }
EOF2
ip netns exec "$t-r" "$bin/mcrd" --log-level warn supervisor --config "$dir/mcrd.json5" \
    --control-socket-path "$dir/mcrd.sock" 2>"$dir/mcrd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/mcrd.sock" ] && break; sleep 0.1; done
ctl() { "$bin/mcrctl" --socket "$dir/mcrd.sock" "$@"; }
ctl status >/dev/null
sleep 1 # startup queries out

entries() { ip netns exec "$t-r" ip mroute show | grep -c '^(' || true; }
want=$((groups * per))
# One socket per group (each may list igmp_max_msf sources); joins in a
# burst, then held until stdin closes.
mkfifo "$dir/hold"
ip netns exec "$t-h" python3 - "$groups" "$per" "$dir/joined" <"$dir/hold" <<'PY' &
import socket, sys
g, per, done = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(g):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    grp = socket.inet_aton(f"232.{1 + i // 256}.{i % 256}.1")
    for k in range(per):
        src = socket.inet_aton(f"10.91.{k // 250}.{2 + k % 250}")
        # struct ip_mreq_source: multiaddr, interface, sourceaddr
        s.setsockopt(socket.IPPROTO_IP, 39, grp + socket.inet_aton("10.92.0.2") + src)
    socks.append(s)
open(done, "w").close()
sys.stdin.read()
PY
joiner=$!
exec 9>"$dir/hold"
t0=$(date +%s.%N)
while [ ! -e "$dir/joined" ]; do sleep 0.01; done
t1=$(date +%s.%N)
deadline=$(( $(date +%s) + 300 ))
n=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    n=$(entries)
    [ "$n" -ge "$want" ] && break
    sleep 0.2
done
t2=$(date +%s.%N)
shown=$(ctl --json mroute | python3 -c 'import json,sys; r=json.load(sys.stdin)["routes"]; print(sum(1 for x in r if x["installed"]=="kernel"), len(r))')
printf 'routes: %d (S,G) joined in %.2f s; %d in ip mroute show %.2f s after the first join (mcrctl mroute: installed/total %s)\n' \
    "$want" "$(echo "$t1 - $t0" | bc)" "$n" "$(echo "$t2 - $t0" | bc)" "$shown"

# Routed vs relayed, one (S,G) of the set: 232.1.0.1 from 10.91.0.2.
rate() { # label
    local out
    out=$(ip netns exec "$t-h" "$bin/mcrd" listen --json --interface ha --group 232.1.0.1 \
        --port 5001 --duration $((secs + 2)) &
        sleep 1
        ip netns exec "$t-up" "$bin/mcrgen" --json --interface u --group 232.1.0.1 --port 5001 \
            --ttl 8 --size 64 --duration "$secs" >/dev/null
        wait)
    echo "$out" | python3 -c "import json,sys; t=json.load(sys.stdin)['total']; print('$1: %d packets in $secs s, %.0f pps, ttl %s..%s' % (t['received'], t['received']/$secs, t['ttl_min'], t['ttl_max']))"
}
rate "routed (kernel MFC)"
ctl add --input-interface ru --input-group 232.1.0.1 --input-port 5001 \
    --outputs 232.1.0.1:5001:ra:7 --name relay >/dev/null
ip netns exec "$t-r" ip mroute show | grep -q '(10.91.0.2,232.1.0.1)' &&
    echo "error: route still in the kernel with a relay rule on its traffic" >&2
rate "relayed (rule, engines)"
