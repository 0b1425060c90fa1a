#!/usr/bin/env bash
# Soak: S1 traffic (64-byte payload, 1:1 with translation) at a fixed rate
# for a long time, sampling mcrd's RSS every 10 s. Shows whether memory stays
# flat and delivery stays complete. Usage (root):
#
#   perf/soak.sh [SECONDS] [PPS] [--engines]     default: 600 500000
#
# --engines sets data_plane.kernel_fast_path: false (every packet through
# the engines). Prints one line per sample and a summary; exits 1 when RSS
# grew by more than 1 MiB between the first and last sample after warm-up or
# fewer than 99.9% of the packets were delivered.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
pps=${2:-500000}
fast=true
[ "${3:-}" = "--engines" ] && fast=false
[ -x target/release/mcrd ] || cargo build --release --bins
p="sk$$"
dir=$(mktemp -d)
cleanup() {
    perf/topo.sh down "$p" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
perf/topo.sh up "$p" 1 >/dev/null
cat >"$dir/mcrd.json5" <<EOF
{ data_plane: { kernel_fast_path: $fast },
  rules: [ { name: "soak", input: { interface: "$p-i", group: "239.1.1.1", port: 5000 },
             outputs: [ { interface: "$p-o0", group: "239.2.2.2", port: 6000 } ] } ] }
EOF
B=target/release
ip netns exec "$p-rly" $B/mcrd supervisor --config "$dir/mcrd.json5" \
    --control-socket-path "$dir/mcrd.sock" >"$dir/mcrd.log" 2>&1 &
for _ in $(seq 50); do grep -q "mcrd ready" "$dir/mcrd.log" && break; sleep 0.1; done
pid=$(ip netns pids "$p-rly" | head -1)
ip netns exec "$p-snk" $B/mcrd listen --interface "$p-s0" --group 239.2.2.2 --port 6000 \
    --idle-timeout 3 --json >"$dir/listen.json" &
lpid=$!
sleep 0.5
ip netns exec "$p-gen" $B/mcrgen --gso --interface "$p-g" --group 239.1.1.1 --port 5000 \
    --rate "$pps" --duration "$secs" --ttl 8 --json >"$dir/gen.json" &
gpid=$!
echo "t_s rss_kib"
samples=()
t=0
while kill -0 "$gpid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    echo "$t $rss"
    samples+=("$rss")
    sleep 10
    t=$((t + 10))
done
wait "$gpid"
wait "$lpid" || true
python3 - "$dir" "${samples[@]}" <<'PY'
import json, sys
d = sys.argv[1]
rss = [int(x) for x in sys.argv[2:]]
gen = json.load(open(f"{d}/gen.json"))
lis = json.load(open(f"{d}/listen.json"))
tot = lis["total"]
sent, got = gen["sent"], tot["received"]
# Warm-up: the first minute (or the first sample of a short run).
warm = rss[min(6, len(rss) - 1):]
growth = (warm[-1] - warm[0]) if warm else 0
print(f"sent {sent} at {gen['achieved_pps']:.0f} pps, delivered {got} ({got / sent:.4%}), "
      f"lost {tot['lost']}, reordered {tot['reordered']}")
print(f"RSS KiB: first {rss[0]}, min {min(rss)}, max {max(rss)}, last {rss[-1]}; "
      f"growth after warm-up {growth} KiB")
sys.exit(0 if growth <= 1024 and got >= 0.999 * sent else 1)
PY
