#!/bin/bash
# UDP with a real checksum (tx checksum offload off on the veth so the kernel
# fills it in software), UDP with SO_NO_CHECK (checksum 0), and an IGMPv3
# general query from a bridge querier whose intervals need the exponential
# codes (query interval 200 s, response interval 20 s).
set -x
cd /tmp/wcap
ip netns del wcap-a 2>/dev/null; ip netns del wcap-b 2>/dev/null
ip netns add wcap-a; ip netns add wcap-b
ip link add wcap-va netns wcap-a type veth peer name wcap-vb netns wcap-b
A="ip netns exec wcap-a"; B="ip netns exec wcap-b"
$A ip addr add 10.77.0.1/24 dev wcap-va; $A ip link set wcap-va up
$A ethtool -K wcap-va tx off
$B ip link add wcap-br type bridge mcast_snooping 1 mcast_querier 0 mcast_query_use_ifaddr 1
$B ip link set wcap-vb master wcap-br; $B ip link set wcap-vb up
$B ip addr add 10.77.0.2/24 dev wcap-br; $B ip link set wcap-br up
sleep 2
$B tcpdump -U -i wcap-vb -w udpq.pcap 'udp or igmp' & TP=$!
sleep 1
$A /usr/bin/python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 4)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.77.0.1"))
s.bind(("10.77.0.1", 4000))
s.sendto(b"mcr-wire udp checksum", ("239.7.7.7", 5001))
s.setsockopt(socket.SOL_SOCKET, 11, 1)  # SO_NO_CHECK
s.sendto(b"no checksum", ("239.7.7.7", 5001))
PY
$B ip link set wcap-br type bridge mcast_igmp_version 3 mcast_query_interval 20000 mcast_query_response_interval 2000 mcast_startup_query_interval 20000 mcast_startup_query_count 1 mcast_querier 1
sleep 3
kill $TP; sleep 1
ip netns del wcap-a; ip netns del wcap-b
tcpdump -r udpq.pcap -nn -vv -XX 2>/dev/null
