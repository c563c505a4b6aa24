#!/usr/bin/env bash
# Installs the Rust targets and tools the build needs, once: the wasm32 target (from rustup, or from
# ../shared/toolchain when rustup cannot reach its server). Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

sysroot=$(rustc --print sysroot)
if [[ ! -d $sysroot/lib/rustlib/wasm32-unknown-unknown ]]; then
  echo "[toolchain] adding the wasm32-unknown-unknown target"
  if ! rustup target add wasm32-unknown-unknown; then
    fallback=../shared/toolchain/rust-std-1.95.0-wasm32.tar.xz
    # A clone of a local checkout made elsewhere: ../shared beside that checkout.
    origin=$(git config --get remote.origin.url 2>/dev/null || true)
    if [[ ! -f $fallback && $origin == /* ]]; then
      fallback=$origin/../shared/toolchain/rust-std-1.95.0-wasm32.tar.xz
    fi
    [[ -f $fallback && $(rustc --version) == "rustc 1.95.0 "* ]] || { echo "no wasm32 target to be had" >&2; exit 1; }
    tar -xJf "$fallback" -C "$sysroot/lib/rustlib/"
  fi
fi

# Prometheus and promtool (Debian's `prometheus` package): the rules in ops/prometheus/ are checked and
# unit-tested with promtool in `make test`, and `make dev` runs a Prometheus with them.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "[toolchain] installing prometheus (promtool) with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
