#!/bin/bash
# IGMP captures: host wcap-a (kernel IGMP) <-> veth <-> bridge querier in wcap-b.
set -x
cd /tmp/wcap
ip netns del wcap-a 2>/dev/null; ip netns del wcap-b 2>/dev/null
ip netns add wcap-a; ip netns add wcap-b
ip link add wcap-va netns wcap-a type veth peer name wcap-vb netns wcap-b
A="ip netns exec wcap-a"; B="ip netns exec wcap-b"
$A ip link set lo up; $B ip link set lo up
$A ip addr add 10.77.0.1/24 dev wcap-va; $A ip link set wcap-va up
$B ip link add wcap-br type bridge mcast_snooping 1 mcast_querier 0 mcast_query_use_ifaddr 1
$B ip link set wcap-vb master wcap-br; $B ip link set wcap-vb up
$B ip addr add 10.77.0.2/24 dev wcap-br; $B ip link set wcap-br up
sleep 2
$B tcpdump -U -i wcap-vb -w igmp.pcap igmp & TP=$!
sleep 1
join() { # version group [source] ; holds the membership for 3 s then drops
$A /usr/bin/python3 - "$@" <<'PY'
import socket, struct, sys, time
g = sys.argv[1]; src = sys.argv[2] if len(sys.argv) > 2 else None
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifa = socket.inet_aton("10.77.0.1")
if src:
    # struct ip_mreq_source: imr_multiaddr, imr_interface, imr_sourceaddr
    m = socket.inet_aton(g) + ifa + socket.inet_aton(src)
    s.setsockopt(socket.IPPROTO_IP, 39, m)
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 3)
    s.setsockopt(socket.IPPROTO_IP, 40, m)
else:
    m = socket.inet_aton(g) + ifa
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, m)
    time.sleep(3)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, m)
time.sleep(1)
PY
}
$A sysctl -w net.ipv4.conf.wcap-va.force_igmp_version=1
join 239.1.1.1
$A sysctl -w net.ipv4.conf.wcap-va.force_igmp_version=2
join 239.2.2.2
$A sysctl -w net.ipv4.conf.wcap-va.force_igmp_version=3
join 239.3.3.3
join 232.4.4.4 10.77.0.9
# v3 querier: general query answered with MODE_IS_* records; source-specific queries after BLOCK
$B ip link set wcap-br type bridge mcast_igmp_version 3 mcast_querier 1 mcast_query_interval 300 mcast_query_response_interval 100 mcast_startup_query_interval 300
$A sysctl -w net.ipv4.conf.wcap-va.force_igmp_version=3
$A /usr/bin/python3 - <<'PY' &
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifa = socket.inet_aton("10.77.0.1")
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("239.3.3.5") + ifa)
for src in ("10.77.0.7", "10.77.0.8"):
    s.setsockopt(socket.IPPROTO_IP, 39, socket.inet_aton("232.5.5.5") + ifa + socket.inet_aton(src))
time.sleep(8)
s.setsockopt(socket.IPPROTO_IP, 40, socket.inet_aton("232.5.5.5") + ifa + socket.inet_aton("10.77.0.8"))
time.sleep(4)
PY
sleep 14
$B ip link set wcap-br type bridge mcast_querier 0
# v2 querier: general query, then group-specific after a v2 leave
$B ip link set wcap-br type bridge mcast_igmp_version 2 mcast_querier 1
$A sysctl -w net.ipv4.conf.wcap-va.force_igmp_version=2
join 239.2.2.3
sleep 2
kill $TP; sleep 1
$B ip link set wcap-br type bridge mcast_querier 0
ip netns del wcap-a; ip netns del wcap-b
tcpdump -r igmp.pcap -nn -v 2>/dev/null | head -100
