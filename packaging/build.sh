#!/usr/bin/env bash
# Builds the mcr packages: target/packages/mcr_VERSION-1_ARCH.deb and
# target/packages/mcr-VERSION-1.ARCH.rpm, from one staging of the binaries
# (stripped), man pages and shell completions.
#
#   packaging/build.sh                  release build (what to ship)
#   packaging/build.sh --profile dev    reuse the debug build (tests: fast)
#   MCR_PACKAGES=deb packaging/build.sh only the .deb (the Containerfile)
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
# Fast compression for dev packages (the tests), the distributions' usual
# (xz for the .deb, zstd for the .rpm) otherwise.
case "$profile" in
    dev) bindir=target/debug; deb_opts=(--fast); rpm_opts=(--payload-compress gzip) ;;
    *) bindir=target/$profile; deb_opts=(); rpm_opts=() ;;
esac

kinds=${MCR_PACKAGES:-deb rpm}
tools=()
for k in $kinds; do
    case "$k" in
        deb) tools+=(cargo-deb) ;;
        rpm) tools+=(cargo-generate-rpm) ;;
        *) echo "MCR_PACKAGES: unknown kind '$k' (deb, rpm)" >&2; exit 2 ;;
    esac
done
for tool in "${tools[@]}"; do
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

mkdir -p target/packages
rm -f target/packages/*.deb target/packages/*.rpm
for k in $kinds; do
    case "$k" in
        deb) cargo deb -p mcr-cli --no-build --no-strip "${deb_opts[@]}" -o target/packages/ >/dev/null ;;
        rpm) cargo generate-rpm -p cli "${rpm_opts[@]}" -o target/packages/ >/dev/null ;;
    esac
done
ls -1 target/packages/*.deb target/packages/*.rpm 2>/dev/null
