#!/usr/bin/env bash
# ARM builds tested under qemu-user on an x86_64 machine:
#   1. the library's unit tests, cross-compiled and run by the target's runner
#      (.cargo/config.toml);
#   2. end to end: the ARM release binary, started under qemu, ingests points,
#      is killed with kill -9, restarts and delivers every acknowledged point
#      to the real influxd on the host (tests/faults.rs, run with
#      HISSRV_TEST_BIN / HISSRV_TEST_RUNNER).
#
#   cross/test-arm.sh [TARGET...]   (default: the two musl targets)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)
bash cross/build.sh "${targets[@]}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

for t in "${targets[@]}"; do
  case "$t" in
    aarch64-*-musl) runner="qemu-aarch64" ;;
    armv7-*-musleabihf) runner="qemu-arm" ;;
    aarch64-*-gnu) runner="qemu-aarch64 -L /usr/aarch64-linux-gnu" ;;
    armv7-*-gnueabihf) runner="qemu-arm -L /usr/arm-linux-gnueabihf" ;;
    armv5te-*-gnueabi) runner="qemu-arm -L /usr/arm-linux-gnueabi" ;;
  esac
  echo "== $t: unit tests under ${runner%% *}"
  # The seeded simulations run a tenth of their seeds under emulation (10-20
  # times slower): 32-bit arithmetic still tried, CI kept under 30 minutes.
  case "$t" in
    *-musl | *-musleabihf) HISSRV_SIM_SHARE=10 cargo-zigbuild test --locked --target "$t" --lib ;;
    *) HISSRV_SIM_SHARE=10 cargo test --locked --target "$t" --lib ;;
  esac
  echo "== $t: end to end under ${runner%% *} (kill -9, restart, delivery to influxd)"
  HISSRV_TEST_BIN="$PWD/dist/hissrv-${version}-${t}" HISSRV_TEST_RUNNER="$runner" \
    cargo test --locked --test faults -- --exact kill_minus_nine_loses_no_acknowledged_point
done
