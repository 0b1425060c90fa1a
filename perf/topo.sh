#!/usr/bin/env bash
# Topology for the perf harness (run as root).
#
#   perf/topo.sh up   PREFIX NOUT [uso]
#                                   build it; "uso": the relay's outputs keep UDP
#                                   segmentation offload on (see up)
#   perf/topo.sh down PREFIX        kill what runs in its namespaces, delete them
#   perf/topo.sh sinks PREFIX NOUT MODE GRO [CPUS]
#                                   how sinks 0..NOUT-1 receive: MODE inline (in the
#                                   sender's context) or apart (on CPUS, a comma list;
#                                   see sinks); GRO on|off merges UDP runs before IP,
#                                   none turns GRO off
#
#   PREFIX-gen  [PREFIX-g 10.200.0.1/24] --- [PREFIX-i 10.200.0.2/24]  PREFIX-rly
#   PREFIX-rly  [PREFIX-oK 10.200.K+1.1/24] --- [PREFIX-sK 10.200.K+1.2/24]  PREFIX-snk
#                                                        for K = 0 .. NOUT-1
#
# Interface names are PREFIX plus at most 4 characters, so PREFIX must be at
# most 11 characters (run.sh uses "pf<pid>").
set -euo pipefail

usage="usage: topo.sh up PREFIX NOUT [uso] | down PREFIX | sinks PREFIX NOUT inline|apart on|off|none [CPUS]"
cmd=${1:?$usage}
p=${2:?PREFIX missing}
if [ ${#p} -gt 11 ]; then echo "topo.sh: prefix '$p' longer than 11 characters" >&2; exit 2; fi

down() {
    for ns in "$p-gen" "$p-rly" "$p-snk"; do
        ip netns list 2>/dev/null | grep -qw -- "^$ns" || continue
        # Only processes inside our own namespaces: all were started by this run.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
        sleep 0.2
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}

ns_sysctl() {  # namespace-local sysctls only (net.ipv4.conf.*, ip_forward, ipv6 conf)
    local ns=$1; shift
    ip netns exec "$ns" sysctl -qw "$@" >/dev/null
}

# The sinks stand for other hosts, but on veth a frame's receive work (GRO,
# IP, UDP, socket queue) runs wherever its sender runs: the 50 sinks of S3
# bill the generator's and the relay's CPU fifty times per input packet.
# "apart" steers each sink's receive work after GRO to CPUS with receive
# packet steering (rps_cpus), as a NIC's receive-side scaling spreads it over
# cores; "inline" undoes it. GRO "on" (rx-udp-gro-forwarding) lets a sink
# merge a run of one UDP flow before IP: sinks without a listener drop the
# run at once, listeners with UDP_GRO take it in one read; rx_packets still
# counts every frame. GRO "none" turns GRO off altogether: a frame's
# receive then starts in the shared backlog of the CPU receive packet
# steering picks, not in a NAPI poll on the sender's CPU, so with the sinks
# apart none of it is billed to the sender, as with hosts behind a wire
# (perf.py --uso, where batches keep the frame count low enough for one
# shared backlog; its drops are reported per step).
# rps_cpus format for a comma list of CPU numbers: hex, in comma-separated
# groups of 32 CPUs, highest first ("1" -> 2, "33" -> 2,00000000).
cpu_mask() {
    local list=$1 c top=0 i out=""
    local -a words=()
    [ -n "$list" ] || { echo "topo.sh: no CPUs given" >&2; exit 2; }
    for c in ${list//,/ }; do
        [[ $c =~ ^[0-9]+$ ]] || { echo "topo.sh: CPU '$c' is not a number" >&2; exit 2; }
        i=$((c / 32))
        words[i]=$(( ${words[i]:-0} | (1 << (c % 32)) ))
        [ "$i" -le "$top" ] || top=$i
    done
    for ((i = top; i >= 0; i--)); do
        if [ "$i" -eq "$top" ]; then out=$(printf '%x' "${words[i]:-0}"); else out+=$(printf ',%08x' "${words[i]:-0}"); fi
    done
    echo "$out"
}

sinks() {
    local nout=${1:?NOUT missing} mode=${2:?MODE missing} gro=${3:?GRO missing} cpus=${4:-}
    local k dev mask=0 napi=on
    case "$gro" in
        on | off) ;;
        none) gro=off napi=off ;;
        *) echo "topo.sh sinks: GRO is on, off or none, not '$gro'" >&2; exit 2 ;;
    esac
    case "$mode" in
        apart) mask=$(cpu_mask "$cpus") ;;
        inline) ;;
        *) echo "topo.sh sinks: MODE is inline or apart, not '$mode'" >&2; exit 2 ;;
    esac
    {
        for ((k = 0; k < nout; k++)); do
            dev="$p-s$k"
            echo "ethtool -K $dev gro $napi rx-udp-gro-forwarding $gro >/dev/null"
            echo "echo $mask > /sys/class/net/$dev/queues/rx-0/rps_cpus"
        done
    } | ip netns exec "$p-snk" sh -e
}

up() {
    local nout=${1:?NOUT missing} uso=${2:-}
    local udp_seg=off
    case "$uso" in
        uso) udp_seg=on ;;
        "") ;;
        *) echo "topo.sh up: the third argument is 'uso' or nothing, not '$uso'" >&2; exit 2 ;;
    esac
    for ns in gen rly snk; do
        ip netns add "$p-$ns"
        ip -n "$p-$ns" link set lo up
        # No IPv6 (router solicitations, MLD) so interface counters count test traffic only.
        ns_sysctl "$p-$ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ns_sysctl "$p-$ns" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    done
    ns_sysctl "$p-rly" net.ipv4.ip_forward=1
    # Sink: accept IGMP joins of many groups per socket is not needed (one group each),
    # but the relay joins on its input interface; raise the per-socket limit in the relay ns.
    ns_sysctl "$p-rly" net.ipv4.igmp_max_memberships=1024 || true

    ip -n "$p-gen" link add "$p-g" type veth peer name "$p-i" netns "$p-rly"
    ip -n "$p-gen" addr add 10.200.0.1/24 dev "$p-g"
    ip -n "$p-rly" addr add 10.200.0.2/24 dev "$p-i"
    ip -n "$p-gen" link set "$p-g" up
    ip -n "$p-rly" link set "$p-i" up
    # Multicast leaves the generator through its only interface.
    ip -n "$p-gen" route add 224.0.0.0/4 dev "$p-g"

    local k
    {
        for ((k = 0; k < nout; k++)); do
            echo "link add $p-o$k type veth peer name $p-s$k netns $p-snk"
        done
    } | ip -n "$p-rly" -batch -
    {
        for ((k = 0; k < nout; k++)); do
            echo "addr add 10.200.$((k + 1)).1/24 dev $p-o$k"
            echo "link set $p-o$k up"
        done
    } | ip -n "$p-rly" -batch -
    {
        for ((k = 0; k < nout; k++)); do
            echo "addr add 10.200.$((k + 1)).2/24 dev $p-s$k"
            echo "link set $p-s$k up"
        done
    } | ip -n "$p-snk" -batch -
    # GRO on the receiving veths puts each one on its own NAPI ring (256
    # frames) instead of the CPU's shared backlog (net.core.netdev_max_backlog,
    # 1000 frames, host-wide): like a real NIC, every output interface then
    # queues for itself, and a 1:50 fan-out of one packet no longer
    # overflows a single shared queue. Whether UDP datagrams are merged
    # is set per scenario (see sinks).
    # veth only takes the NAPI path for frames from a sender without TSO
    # (veth_skb_is_eligible_for_gro), so TSO goes off on the sending ends.
    # UDP segmentation off on the relay's outputs: a relay that sends a
    # batch of datagrams as one UDP GSO frame (mcrd's engines with a
    # receive ring) has it cut into one frame per datagram on the relay's
    # side, as a NIC does, so each sink receives, and rx_packets counts,
    # every datagram as its own frame. With "uso" the outputs keep the
    # offload on and stand for NICs that cut batches on the wire: a batch
    # reaches its sink whole (perf.py --uso counts its datagrams by bytes).
    for ((k = 0; k < nout; k++)); do
        ip netns exec "$p-rly" ethtool -K "$p-o$k" tso off tx-udp-segmentation "$udp_seg" >/dev/null
        ip netns exec "$p-snk" ethtool -K "$p-s$k" gro on >/dev/null
    done
    ip netns exec "$p-gen" ethtool -K "$p-g" tso off >/dev/null
    ip netns exec "$p-rly" ethtool -K "$p-i" gro on >/dev/null
}

case "$cmd" in
    up) down; up "${3:-}" "${4:-}" ;;
    sinks) shift 2; sinks "$@" ;;
    down) down ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
