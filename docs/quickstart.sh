#!/usr/bin/env bash
# Builds mcr and runs mcrd on docs/examples/quickstart.json5 between
# namespaces it creates, proves it relays with a test stream, then keeps
# mcrd in the foreground until Ctrl-C (or exits with --no-wait). Run as root.
#
#   mcr-qs-src  [qs-src 10.90.1.1] --- [qs-in 10.90.1.2]  mcr-qs-relay
#   mcr-qs-relay [qs-out 10.90.2.1] --- [qs-dst 10.90.2.2] mcr-qs-dst
set -euo pipefail
cd "$(dirname "$0")/.."
wait_for_ctrl_c=1
[ "${1:-}" = "--no-wait" ] && wait_for_ctrl_c=0

if [ "$(id -u)" -ne 0 ]; then echo "run as root (creates network namespaces)" >&2; exit 2; fi
if ! command -v ip >/dev/null; then apt-get update -qq && apt-get install -y -qq iproute2; fi
cargo build --release --bins
bin=target/release

cleanup() {
    [ -n "${mcrd_pid:-}" ] && kill "$mcrd_pid" 2>/dev/null && wait "$mcrd_pid" 2>/dev/null
    for ns in mcr-qs-src mcr-qs-relay mcr-qs-dst; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup

for ns in mcr-qs-src mcr-qs-relay mcr-qs-dst; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n mcr-qs-src link add qs-src type veth peer name qs-in netns mcr-qs-relay
ip -n mcr-qs-relay link add qs-out type veth peer name qs-dst netns mcr-qs-dst
ip -n mcr-qs-src addr add 10.90.1.1/24 dev qs-src
ip -n mcr-qs-relay addr add 10.90.1.2/24 dev qs-in
ip -n mcr-qs-relay addr add 10.90.2.1/24 dev qs-out
ip -n mcr-qs-dst addr add 10.90.2.2/24 dev qs-dst
ip -n mcr-qs-src link set qs-src up
ip -n mcr-qs-relay link set qs-in up
ip -n mcr-qs-relay link set qs-out up
ip -n mcr-qs-dst link set qs-dst up

mkdir -p /run/mcr
ip netns exec mcr-qs-relay "$bin/mcrd" supervisor \
    --config docs/examples/quickstart.json5 \
    --control-socket-path /run/mcr/mcrd-mcr-qs-relay.sock &
mcrd_pid=$!
sleep 1

echo "== sending 10000 packets to 239.1.1.1:5000 on qs-src; listening for 239.2.2.2:6000 on qs-dst"
ip netns exec mcr-qs-dst "$bin/mcrd" listen --interface qs-dst --group 239.2.2.2 --port 6000 \
    --count 10000 --duration 10 &
listen_pid=$!
sleep 0.5
ip netns exec mcr-qs-src "$bin/mcrgen" --interface qs-src --group 239.1.1.1 --port 5000 \
    --rate 10000 --count 10000
wait "$listen_pid"

if [ "$wait_for_ctrl_c" = 1 ]; then
    echo "== mcrd is relaying in namespace mcr-qs-relay; Ctrl-C stops it and removes the namespaces"
    wait "$mcrd_pid"
fi
