#!/usr/bin/env bash
# Builds the GPU binaries here and stages them for the device check under
# bench/gpu/stage/ (ignored by git; the device `run` carries it:
# `carry: ["bench/gpu/stage"]`):
#   bin/          cuda_backend_test, cuda_model_test, gpu_bench (stripped)
#   payload.tar.xz  every shared library they need except CUDA's own (the device
#                 has the CUDA 13 toolkit, driver and pip CUDA libraries), glibc and
#                 its loader under glibc/ (used only when the device's glibc is too
#                 old), and data/: a SmolLM2 slice (smollm2_slice.py) and the
#                 capitals dataset, when this checkout has them
#   cuda_sonames.txt  the CUDA libraries the binaries load, by soname
#   stage.json    what was staged (sizes, the slice's layer count, or why none)
# A library counts as CUDA's when it resolves inside the CUDA toolkit that
# built the binaries, or its soname is one of CUDA's (explicit list below);
# nothing else (ICU's libicu* included) is matched by name.
#   bench/gpu/stage.sh [build-dir]      (default build-cuda)
# Env: LASERD_DATA_DIR (default /work/main/.data, else <root>/.data),
#      SLICE_LAYERS (default: as many SmolLM2 blocks as fit, at most 6),
#      CARRY_LIMIT_MIB (default 62: the device carries 64 MiB with the tree).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-cuda}
stage=$root/bench/gpu/stage
limit_mib=${CARRY_LIMIT_MIB:-62}
data=${LASERD_DATA_DIR:-}
if [ -z "$data" ]; then
  for d in "$root/.data" /work/main/.data; do [ -d "$d" ] && { data=$d; break; }; done
fi
targets=(cuda_backend_test cuda_model_test gpu_bench)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
grep -q '^CMAKE_CUDA_COMPILER:[A-Z]*=/' "$build/CMakeCache.txt" || {
  echo "stage.sh: $build was configured without CUDA (no nvcc?)" >&2
  exit 1
}
ninja -C "$build" -j2 "${targets[@]}"

# The toolkit the binaries were built against: where its libraries live.
nvcc=$(sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
toolkit=$(realpath "$(dirname "$nvcc")/..")
cuda_sonames='^lib(cuda|cudart|cublas|cublasLt|cusolver|cusolverMg|cusparse|curand|cufft|'
cuda_sonames+='nvJitLink|nvrtc|nvrtc-builtins|nvidia-[a-z-]+)\.so'
is_cuda() {  # $1 soname, $2 resolved path
  case "$(realpath "$2" 2>/dev/null || echo "$2")" in "$toolkit"/*) return 0 ;; esac
  [[ $1 =~ $cuda_sonames ]]
}

rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/payload/lib" "$stage/payload/glibc" "$stage/payload/data"
cp "$build/tests/cuda_backend_test" "$build/tests/cuda_model_test" "$build/bench/gpu_bench" \
  "$stage/bin/"
strip --strip-unneeded "$stage"/bin/*
: >"$stage/cuda_sonames.txt"
for b in "$stage"/bin/*; do ldd "$b"; done | awk '/=>/{print $1, $3}' | sort -u |
  while read -r soname lib; do
    if is_cuda "$soname" "$lib"; then
      echo "$soname" >>"$stage/cuda_sonames.txt"
      continue
    fi
    [ "$lib" = "not" ] && { echo "stage.sh: $soname not found here" >&2; exit 1; }
    case "$soname" in
      libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | libresolv.so.*)
        cp -L "$lib" "$stage/payload/glibc/" ;;
      *) cp -L "$lib" "$stage/payload/lib/" ;;
    esac
  done
sort -u -o "$stage/cuda_sonames.txt" "$stage/cuda_sonames.txt"
grep -q '^libcudart' "$stage/cuda_sonames.txt" || {
  echo "stage.sh: no CUDA runtime among the binaries' libraries (toolkit $toolkit)" >&2
  exit 1
}
cp -L /lib64/ld-linux-x86-64.so.2 "$stage/payload/glibc/"
strip --strip-unneeded "$stage"/payload/lib/* 2>/dev/null || true

# What travels besides the stage: the tracked and untracked-not-ignored files.
tree_bytes=$(cd "$root" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
XZ_OPT="-T0 -6" tar -C "$stage/payload" -cJf "$stage/libs.tar.xz" lib glibc
libs_bytes=$(stat -c %s "$stage/libs.tar.xz")
bin_bytes=$(du -sb "$stage/bin" | cut -f1)
room=$((limit_mib * 1048576 - tree_bytes - libs_bytes - bin_bytes - 65536))

# The SmolLM2 slice: as many real blocks as fit (each ~2.2 MB; the re-quantized
# embedding and the tokenizer ~20 MB); xz -1 gains ~8% on it.
slice_note="no SmolLM2 GGUF in '$data'"
slice_layers=0
gguf=$data/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$gguf" ]; then
  fit=$(((room * 100 / 92 - 20500000) / 2210000))
  slice_layers=${SLICE_LAYERS:-$((fit > 6 ? 6 : fit))}
  if [ "$slice_layers" -ge 1 ]; then
    python3 "$root/bench/gpu/smollm2_slice.py" "$gguf" "$stage/payload/data/smollm2_slice.gguf" \
      "$slice_layers"
    slice_note="SmolLM2-135M Q4_1, blocks 0..$((slice_layers - 1)) of 30,"
    slice_note+=" embedding re-quantized Q8_0 to Q4_1"
  else
    slice_layers=0
    slice_note="no room: $room bytes left of ${limit_mib} MiB after the tree and libraries"
  fi
fi
[ -f "$data/capitals.jsonl" ] && cp "$data/capitals.jsonl" "$stage/payload/data/"
if [ -n "$(ls -A "$stage/payload/data")" ]; then
  XZ_OPT="-T0 -1" tar -C "$stage/payload" -cJf "$stage/data.tar.xz" data
fi
rm -rf "$stage/payload"
stage_bytes=$(du -sb "$stage" | cut -f1)
python3 - "$stage/stage.json" <<EOF
import json, sys
json.dump({"tree_bytes": $tree_bytes, "stage_bytes": $stage_bytes,
           "carried_total_mib": round(($tree_bytes + $stage_bytes) / 1048576, 1),
           "toolkit": "$toolkit", "smollm2_slice_layers": $slice_layers,
           "smollm2_slice": "$slice_note"}, open(sys.argv[1], "w"), indent=1)
EOF
cat "$stage/stage.json"
if [ $((tree_bytes + stage_bytes)) -gt $((limit_mib * 1048576)) ]; then
  echo "stage.sh: tree + stage is $((tree_bytes + stage_bytes)) bytes, over ${limit_mib} MiB" >&2
  exit 1
fi
echo "staged: $(ls "$stage/bin" | tr '\n' ' ')"
