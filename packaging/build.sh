#!/usr/bin/env bash
# Builds the mcr packages: target/packages/mcr_VERSION-1_ARCH.deb and
# target/packages/mcr-VERSION-1.ARCH.rpm, from one staging of the binaries
# (stripped), man pages and shell completions.
#
#   packaging/build.sh                  release build (what to ship)
#   packaging/build.sh --profile dev    reuse the debug build (tests: fast)
#
# Installs cargo-deb and cargo-generate-rpm with `cargo install --locked`
# when missing. Package contents: the [package.metadata.deb] and
# [package.metadata.generate-rpm] tables of cli/Cargo.toml; see
# docs/deployment.md#packages.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
if [ "${1:-}" = "--profile" ]; then
    profile=${2:?--profile needs a name}
fi
case "$profile" in
    dev) bindir=target/debug ;;
    *) bindir=target/$profile ;;
esac

for tool in cargo-deb cargo-generate-rpm; do
    if ! command -v "$tool" >/dev/null; then
        echo "installing $tool" >&2
        cargo install --locked "$tool"
    fi
done

cargo build --locked --profile "$profile" -p mcr-cli --bins

stage=packaging/stage
rm -rf "$stage"
mkdir -p "$stage/bin"
for b in mcrd mcrctl mcrgen; do
    strip --strip-debug -o "$stage/bin/$b" "$bindir/$b"
done
"$bindir/mcr-gen-docs" "$stage" >/dev/null
gzip -9n "$stage"/man/*

rm -f target/packages/*.deb target/packages/*.rpm
cargo deb -p mcr-cli --no-build --no-strip --fast -o target/packages/ >/dev/null
cargo generate-rpm -p cli -o target/packages/ >/dev/null
ls -1 target/packages/*.deb target/packages/*.rpm
