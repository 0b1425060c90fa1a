#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine, as root: installs what
# the tests need, checks formatting and lints, builds, and runs every test
# (unit, property and end-to-end in network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh must run as root (the end-to-end tests create network namespaces)" >&2
    exit 2
fi

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v python3 >/dev/null || need+=(python3)
command -v capsh >/dev/null || need+=(libcap2-bin)
command -v setpriv >/dev/null || need+=(util-linux)
command -v useradd >/dev/null || need+=(passwd)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v nft >/dev/null || need+=(nftables)
command -v ethtool >/dev/null || need+=(ethtool)
# metrics.rs parses scrapes with Debian's python3 and its prometheus_client.
/usr/bin/python3 -c 'import prometheus_client.parser' 2>/dev/null || need+=(python3-prometheus-client)
# packages.rs: dpkg -i, rpm -qpl, man -l, strip.
command -v rpm >/dev/null || need+=(rpm)
command -v man >/dev/null || need+=(man-db)
command -v strip >/dev/null || need+=(binutils)
# FRR (zebra + pimd + vtysh) is the judge of the PIM tests.
[ -x /usr/lib/frr/pimd ] || need+=(frr)
# The data-path integrity tests build odd frames with scapy.
/usr/bin/python3 -c 'import scapy' 2>/dev/null || need+=(python3-scapy)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install a Rust toolchain (rustup) first" >&2
    exit 2
fi

# The packaging tools packaging/build.sh uses (packages.rs runs it).
for tool in cargo-deb cargo-generate-rpm; do
    command -v "$tool" >/dev/null || cargo install --locked "$tool"
done

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace
