#!/usr/bin/env bash
# mcr performance harness: one command, see perf/README.md.
#
#   perf/run.sh                       # all scenarios S1-S5, relays mcrd, kernel, socat
#   perf/run.sh --scenario S1,S3      # a selection; any other option goes to perf/perf.py
#   perf/run.sh --help
#
# Builds release binaries, installs smcroute and socat when absent, builds the
# topology in fresh namespaces pf<pid>-{gen,rly,snk}, runs perf/perf.py and
# removes everything again on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "run as root (creates network namespaces)" >&2; exit 2; fi
case " $* " in *" -h "* | *" --help "*) exec python3 perf/perf.py --help ;; esac

missing=()
command -v smcrouted >/dev/null || missing+=(smcroute)
command -v socat >/dev/null || missing+=(socat)
command -v ip >/dev/null || missing+=(iproute2)
command -v ethtool >/dev/null || missing+=(ethtool)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release --bins

prefix="pf$$"
teardown() { perf/topo.sh down "$prefix" >/dev/null 2>&1 || true; }
trap teardown EXIT
trap 'teardown; exit 130' INT TERM

python3 perf/perf.py --prefix "$prefix" --command "perf/run.sh $*" "$@"
