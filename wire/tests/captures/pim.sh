#!/bin/bash
# PIM captures: source/receiver host wcap-h -- FRR pimd in wcap-p1 (DR) -- FRR pimd in wcap-p2 (RP 10.78.2.2).
set -x
cd /tmp/wcap
for n in wcap-h wcap-p1 wcap-p2; do ip netns del $n 2>/dev/null; ip netns add $n; ip netns exec $n ip link set lo up; done
ip link add wcap-h0 netns wcap-h type veth peer name wcap-p1a netns wcap-p1
ip link add wcap-p1b netns wcap-p1 type veth peer name wcap-p2a netns wcap-p2
H="ip netns exec wcap-h"; P1="ip netns exec wcap-p1"; P2="ip netns exec wcap-p2"
$H ip addr add 10.78.1.1/24 dev wcap-h0; $H ip link set wcap-h0 up; $H ip route add default via 10.78.1.2
$P1 ip addr add 10.78.1.2/24 dev wcap-p1a; $P1 ip link set wcap-p1a up
$P1 ip addr add 10.78.2.1/24 dev wcap-p1b; $P1 ip link set wcap-p1b up
$P2 ip addr add 10.78.2.2/24 dev wcap-p2a; $P2 ip link set wcap-p2a up; $P2 ip route add 10.78.1.0/24 via 10.78.2.1
for n in p1 p2; do
  $(eval echo \$${n^^}) sysctl -qw net.ipv4.ip_forward=1
  mkdir -p /tmp/wcap/$n; rm -f /tmp/wcap/$n/*; chown frr:frr /tmp/wcap/$n; chmod 777 /tmp/wcap
  if [ $n = p1 ]; then IFS_="wcap-p1a wcap-p1b"; else IFS_="wcap-p2a"; fi
  { echo "hostname $n"; echo "log file /tmp/wcap/$n/pimd.log"; for i in $IFS_; do echo "interface $i"; echo " ip pim"; [ $i = wcap-p1a ] && echo " ip igmp"; done; echo "ip pim rp 10.78.2.2 224.0.0.0/4"; } > /tmp/wcap/$n/pimd.conf
  echo "hostname $n" > /tmp/wcap/$n/zebra.conf
  ip netns exec wcap-$n /usr/lib/frr/zebra -d -N wcap-$n -f /tmp/wcap/$n/zebra.conf -z /tmp/wcap/$n/zserv.api -i /tmp/wcap/$n/zebra.pid --vty_socket /tmp/wcap/$n
  sleep 1
  ip netns exec wcap-$n /usr/lib/frr/pimd -d -N wcap-$n -f /tmp/wcap/$n/pimd.conf -z /tmp/wcap/$n/zserv.api -i /tmp/wcap/$n/pimd.pid --vty_socket /tmp/wcap/$n
done
$P2 tcpdump -U -i wcap-p2a -w pim.pcap 'ip proto 103' & TP=$!
$P1 tcpdump -U -i wcap-p1a -w pimh.pcap 'ip proto 103 or igmp' & TP2=$!
sleep 35
vtysh --vty_socket /tmp/wcap/p1 -c 'show ip pim neighbor' -c 'show ip pim rp-info'
# receiver: (*,G) join toward the RP
$H /usr/bin/python3 - <<'PY' &
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("239.5.5.5") + socket.inet_aton("10.78.1.1"))
time.sleep(20)
s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, socket.inet_aton("239.5.5.5") + socket.inet_aton("10.78.1.1"))
time.sleep(3)
PY
sleep 5
# source: the DR registers to the RP, which has no receivers and answers Register-Stop
$H /usr/bin/python3 - <<'PY'
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.78.1.1"))
for i in range(10):
    s.sendto(b"mcr-wire capture %d" % i, ("239.6.6.6", 5000)); time.sleep(1)
PY
sleep 15
vtysh --vty_socket /tmp/wcap/p1 -c 'show ip pim upstream' -c 'show ip mroute'
vtysh --vty_socket /tmp/wcap/p2 -c 'show ip pim upstream'
kill $TP $TP2; sleep 1
for n in p1 p2; do kill $(cat /tmp/wcap/$n/pimd.pid) $(cat /tmp/wcap/$n/zebra.pid); done
sleep 1
for n in wcap-h wcap-p1 wcap-p2; do ip netns del $n; done
tcpdump -r pim.pcap -nn -v 2>/dev/null | head -150
