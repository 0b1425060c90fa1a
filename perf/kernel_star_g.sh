#!/usr/bin/env bash
# Are the kernel's own (*,G) MFC entries (origin 0.0.0.0) usable for a
# route's (*,G)? Installs one by hand on a fresh mroute socket (python),
# parent = the upstream vif, and sends 20 packets each way.
# Usage (root): perf/kernel_star_g.sh oif|both
#   oif:  the (*,G) lists only the downstream vif as an oif (a route's shape)
#   both: the upstream vif is an oif too
# Measured (kernel of the test machine): oif: 0 of 20 forwarded (the kernel
# makes an unresolved (S,G) and sends NOCACHE instead); both: forwarded
# downstream (never back out of the iif), the downstream host's 20 not
# forwarded upstream and counted "arrived on wrong iif". See
# docs/data-path.md, "Routes".
set -e
mode=${1:-oif}
cd "$(dirname "$0")/.."
mcrgen=${MCRGEN:-target/debug/mcrgen}
[ -x "$mcrgen" ] || cargo build -p mcr-traffic
cnt=$(mktemp)
t=sg$$
for n in up r a; do ip netns add $t-$n; ip -n $t-$n link set lo up; done
trap 'kill %1 2>/dev/null; rm -f $cnt; for n in up r a; do ip netns del $t-$n; done' EXIT
ip -n $t-r link add ru type veth peer name u netns $t-up
ip -n $t-r link add ra type veth peer name ha netns $t-a
ip -n $t-r addr add 10.71.0.1/24 dev ru; ip -n $t-up addr add 10.71.0.2/24 dev u
ip -n $t-r addr add 10.72.0.1/24 dev ra; ip -n $t-a addr add 10.72.0.2/24 dev ha
for x in "r ru" "r ra" "up u" "a ha"; do set -- $x; ip -n $t-$1 link set $2 up; done

ip netns exec $t-r python3 - $mode <<'PY' &
import socket, struct, sys, time
mode = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
s.setsockopt(socket.IPPROTO_IP, 200, 1)
def vif(i, name):
    idx = socket.if_nametoindex(name)
    s.setsockopt(socket.IPPROTO_IP, 202, struct.pack("=HBBIiI", i, 8, 1, 0, idx, 0))
vif(0, "ru"); vif(1, "ra")
ttls = [0]*32; ttls[1] = 1
if mode == "both": ttls[0] = 1
m = socket.inet_aton("0.0.0.0") + socket.inet_aton("239.7.7.7") + struct.pack("=H", 0) + bytes(ttls) + bytes(2) + struct.pack("=IIIi", 0, 0, 0, 0)
s.setsockopt(socket.IPPROTO_IP, 204, m)
print("installed", flush=True)
time.sleep(8)
PY
sleep 1
ip netns exec $t-a timeout 4 tcpdump -ni ha -c 5 udp 2>&1 | grep -c "239.7.7.7" > $cnt & 
sleep 0.5
ip netns exec $t-up "$mcrgen" --interface u --group 239.7.7.7 --port 5000 --ttl 8 --count 20 --rate 50 >/dev/null 2>&1
wait %2 || true
echo "mode=$mode: of 20 sent upstream, seen at the downstream host: $(cat $cnt)"
# The other way: a downstream host's packets for G, seen upstream?
ip netns exec $t-up timeout 4 tcpdump -ni u -c 5 udp 2>&1 | grep -c "239.7.7.7" > $cnt &
sleep 0.5
ip netns exec $t-a "$mcrgen" --interface ha --group 239.7.7.7 --port 5000 --ttl 8 --count 20 --rate 50 >/dev/null 2>&1
wait %2 || true
echo "mode=$mode: of 20 sent by the downstream host, seen upstream: $(cat $cnt)"
ip netns exec $t-r ip -s mroute show
ip netns exec $t-r ip mroute show
