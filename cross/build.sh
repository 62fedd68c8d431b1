#!/usr/bin/env bash
# Release binaries of hissrv for the gateway targets, on a fresh Debian machine.
#
#   cross/build.sh [--deps-only] [TARGET...]     (default: all four targets)
#
# Installs what the targets need when it is missing (Debian: cross gcc, libc
# headers, qemu-user; PyPI: ziglang + cargo-zigbuild; rustup: the pinned
# toolchain's std for each target), builds with `--release --locked`, and puts
# the binaries in dist/hissrv-<version>-<target>. See cross/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(
  aarch64-unknown-linux-musl
  armv7-unknown-linux-musleabihf
  aarch64-unknown-linux-gnu
  armv7-unknown-linux-gnueabihf
  armv5te-unknown-linux-gnueabi
)
# Versions known to build these targets (cross/README.md).
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1

deps_only=0
if [ "${1:-}" = "--deps-only" ]; then
  deps_only=1
  shift
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL_TARGETS[@]}")

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=(qemu-user)
need_zig=0
for t in "${targets[@]}"; do
  case "$t" in
    aarch64-unknown-linux-musl) need_zig=1; apt_packages+=(binutils-aarch64-linux-gnu) ;;
    armv7-unknown-linux-musleabihf) need_zig=1; apt_packages+=(binutils-arm-linux-gnueabihf) ;;
    aarch64-unknown-linux-gnu) apt_packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
    armv7-unknown-linux-gnueabihf) apt_packages+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross) ;;
    armv5te-unknown-linux-gnueabi) apt_packages+=(gcc-arm-linux-gnueabi libc6-dev-armel-cross) ;;
    *) echo "unknown target $t (known: ${ALL_TARGETS[*]})" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -q
  sudo_if_needed apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ $need_zig -eq 1 ] && ! command -v cargo-zigbuild >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check \
    "ziglang==${ZIGLANG_VERSION}" "cargo-zigbuild==${CARGO_ZIGBUILD_VERSION}"
fi
# The toolchain and targets come from rust-toolchain.toml.
rustup set auto-self-update disable >/dev/null 2>&1 || true
rustup toolchain install >/dev/null 2>&1 || rustup show active-toolchain >/dev/null
rustup target add "${targets[@]}"
[ $deps_only -eq 1 ] && exit 0

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p dist
for t in "${targets[@]}"; do
  echo "== $t"
  # Static musl builds (OpenWrt, small gateways): the size profile; glibc
  # builds (Debian, Yocto): the speed profile (Cargo.toml, BENCHMARKS.md).
  case "$t" in
    *-musl | *-musleabihf) profile=size; cargo zigbuild --profile size --locked --target "$t" ;;
    *) profile=release; cargo build --release --locked --target "$t" ;;
  esac
  out="dist/hissrv-${version}-${t}"
  case "$t" in
    # The static builds for small gateways: with panic = "abort" nothing
    # unwinds, so the unwind tables (~12 % of the file) go, as OpenWrt's Rust
    # packages do. A panic is still logged; only RUST_BACKTRACE output is lost.
    aarch64-unknown-linux-musl)
      aarch64-linux-gnu-objcopy --remove-section=.eh_frame --remove-section=.eh_frame_hdr \
        "target/$t/$profile/hissrv" "$out" ;;
    armv7-unknown-linux-musleabihf)
      arm-linux-gnueabihf-objcopy --remove-section=.eh_frame --remove-section=.eh_frame_hdr \
        --remove-section=.ARM.exidx --remove-section=.ARM.extab \
        "target/$t/$profile/hissrv" "$out" ;;
    *) cp "target/$t/$profile/hissrv" "$out" ;;
  esac
  printf '%s: %s bytes\n' "$out" "$(stat -c %s "$out")"
done
