#!/usr/bin/env bash
# Footprint of many idle mcrd instances, one per network namespace.
# Usage (root):
#   perf/instances.sh [N]                   default 50
#   PROFILE=release perf/instances.sh       (default: debug)
#   MCRD=path/to/mcrd MCRCTL=path/to/mcrctl perf/instances.sh
#   RULES=3 FAST_PATH=false IDLE_SECS=30 perf/instances.sh 50
#   RING=1024 perf/instances.sh 50          data_plane.receive_ring (slots)
#   SMAPS=1 perf/instances.sh 1             also prints the largest mappings
# Each namespace gets a veth pair (both ends inside it, addressed, MTU 1500)
# and an mcrd with RULES rules (default 3) from one end to the other. Prints:
# time until all N answer `mcrctl ping`; total and per-instance RSS (sum of
# VmRSS of /proc/PID/status) and PSS (/proc/PID/smaps_rollup, which shares
# the binary's pages out between the instances); threads per instance; and
# CPU of all instances over IDLE_SECS seconds of idleness (utime+stime of
# /proc/PID/stat), as a share of one core. Cleans up on exit, even when
# interrupted.
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
n=${1:-50}
rules=${RULES:-3}
fast=${FAST_PATH:-default}
ring=${RING:-0}
idle=${IDLE_SECS:-30}
profile=${PROFILE:-debug}
dir_of_bins=target/$profile
[ "$profile" = release ] && [ -n "${CARGO_TARGET_DIR:-}" ] && dir_of_bins=$CARGO_TARGET_DIR/release
mcrd=${MCRD:-$dir_of_bins/mcrd}
mcrctl=${MCRCTL:-$dir_of_bins/mcrctl}
for b in "$mcrd" "$mcrctl"; do
    [ -x "$b" ] || { echo "$b missing: cargo build -p mcr-cli --bins (see perf/README.md)" >&2; exit 1; }
done
tag="fp$$"
dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for i in $(seq 1 "$n"); do ip netns del "$tag-$i" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

config() { # I
    local i=$1 out="" k
    for k in $(seq 1 "$rules"); do
        out="$out{ name: \"r$k\", input: { interface: \"in\", group: \"239.1.$((i % 250)).$k\", port: 5000 }, outputs: [ { interface: \"out\", group: \"239.2.$((i % 250)).$k\", port: 6000 } ] },"
    done
    local dp=""
    [ "$fast" = default ] || dp="kernel_fast_path: $fast, "
    [ "$ring" = 0 ] || dp="${dp}receive_ring: $ring, "
    if [ -z "$dp" ]; then
        echo "{ rules: [ $out ] }"
    else
        echo "{ data_plane: { $dp}, rules: [ $out ] }"
    fi
}

for i in $(seq 1 "$n"); do
    ns="$tag-$i"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add in type veth peer name out
    ip -n "$ns" addr add 10.98.0.1/24 dev in
    ip -n "$ns" addr add 10.98.1.1/24 dev out
    ip -n "$ns" link set in up
    ip -n "$ns" link set out up
    config "$i" >"$dir/$i.json5"
done

start=$(date +%s.%N)
for i in $(seq 1 "$n"); do
    ip netns exec "$tag-$i" "$mcrd" --log-level warn supervisor --config "$dir/$i.json5" \
        --control-socket-path "$dir/$i.sock" 2>"$dir/$i.log" &
    pids+=($!)
done
for i in $(seq 1 "$n"); do
    until "$mcrctl" --timeout 1 --socket "$dir/$i.sock" ping >/dev/null 2>&1; do
        kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { echo "mcrd $i exited:" >&2; cat "$dir/$i.log" >&2; exit 1; }
        sleep 0.05
    done
done
ready=$(date +%s.%N)

# `ip netns exec` execs mcrd, so each pid is mcrd's own.
ticks() { # sum of utime+stime over every instance, in clock ticks
    local t=0 p
    for p in "${pids[@]}"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
sleep 2 # let the start-up settle before measuring idleness
t0=$(ticks)
sleep "$idle"
t1=$(ticks)
rss=0 pss=0 threads=0
for p in "${pids[@]}"; do
    rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")))
    threads=$((threads + $(awk '/^Threads:/ {print $2}' "/proc/$p/status")))
    pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
done
hz=$(getconf CLK_TCK)
python3 - "$n" "$rules" "$fast" "$profile" "$start" "$ready" "$rss" "$pss" "$threads" "$t0" "$t1" "$hz" "$idle" <<'PY'
import sys
n, rules, fast, profile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
start, ready = float(sys.argv[5]), float(sys.argv[6])
rss, pss, threads = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
t0, t1, hz, idle = int(sys.argv[10]), int(sys.argv[11]), int(sys.argv[12]), float(sys.argv[13])
cpu = (t1 - t0) / hz / idle
print(f"instances={n} rules={rules} kernel_fast_path={fast} build={profile}")
print(f"all answer ping after {ready - start:.2f} s")
print(f"RSS total {rss / 1024:.1f} MiB, per instance {rss / 1024 / n:.2f} MiB")
print(f"PSS total {pss / 1024:.1f} MiB, per instance {pss / 1024 / n:.2f} MiB")
print(f"threads per instance {threads / n:.1f}")
print(f"idle CPU over {idle:.0f} s: all {cpu * 100:.2f}% of a core, per instance {cpu * 100 / n:.3f}%")
PY
if [ -n "${SMAPS:-}" ]; then
    p=${pids[0]}
    echo "largest mappings of one instance (Rss kB, mapping):"
    awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6 ? $6 : "[anon " $1 "]"} /^Rss:/ {print $2, name}' "/proc/$p/smaps" |
        sort -rn | head -12
fi
