#!/usr/bin/env bash
# Builds the GPU binaries here and stages them, with every shared library
# they need except CUDA's own (the device machine has the CUDA 13 toolkit and
# driver), under bench/gpu/stage/ (ignored by git,
# carried to the device by the `run` tool: `carry: ["bench/gpu/stage"]`).
# glibc and the dynamic loader go to glibc/ in the archive, used only when the device's
# own glibc is too old for these binaries (check.sh decides).
#   bench/gpu/stage.sh [build-dir]      (default build-cuda)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-cuda}
stage=$root/bench/gpu/stage
targets=(cuda_backend_test cuda_model_test gpu_bench)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" -j2 "${targets[@]}"
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib" "$stage/glibc"
cp "$build/tests/cuda_backend_test" "$build/tests/cuda_model_test" "$build/bench/gpu_bench" \
  "$stage/bin/"
strip --strip-unneeded "$stage"/bin/*
# Shared libraries: CUDA's stay behind; glibc's go to glibc/.
for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=> \//{print $3}' | sort -u | while read -r lib; do
  case "$lib" in
    */cuda*/* | */libcuda.so* | */libnvidia*) ;;
    */libc.so.* | */libm.so.* | */libdl.so.* | */libpthread.so.* | */librt.so.* | */libresolv.so.*)
      cp -L "$lib" "$stage/glibc/" ;;
    *) cp -L "$lib" "$stage/lib/" ;;
  esac
done
# The dynamic loader too (for the glibc fallback).
cp -L /lib64/ld-linux-x86-64.so.2 "$stage/glibc/"
strip --strip-unneeded "$stage"/lib/* 2>/dev/null || true
# OpenBLAS and ICU alone are ~70 MB: the libraries travel xz-compressed
# (~18 MB); check.sh unpacks them. The fixture models travel with the tree.
tar -C "$stage" -cJf "$stage/libs.tar.xz" lib glibc
# CUDA libraries the binaries expect, by soname, for check.sh to find there.
for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=>/{print $1}' | grep -E 'cu|nvJit' | sort -u \
  >"$stage/cuda_sonames.txt"
rm -rf "$stage/lib" "$stage/glibc"
du -sh "$stage"
size=$(du -sb "$stage" | cut -f1)
if [ "$size" -gt $((56 * 1024 * 1024)) ]; then
  echo "stage.sh: $stage is $size bytes; the device carries at most 64 MiB with the tree" >&2
  exit 1
fi
echo "staged: $(ls "$stage/bin" | tr '\n' ' ')"
