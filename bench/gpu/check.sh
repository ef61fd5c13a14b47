#!/usr/bin/env bash
# The prepared device check of issue 5, for the GPU machine (CUDA 13 toolkit
# and driver, no Debian libraries). Stage first, here: bench/gpu/stage.sh;
# then on the device, from the repository root, with `carry:
# ["bench/gpu/stage"]`:   bench/gpu/check.sh
# It unpacks the staged binaries' libraries, finds CUDA's there, runs the GPU
# tests (CUDA vs CPU backend, op by op and whole fixture models) and
# gpu_bench (bf16 GEMM rate, every SVD route, a Llama-2-7B-shaped random model:
# forward, sweep, paper emulation), and writes one JSON report to
# $OUT/report.json (and stdout). Budget: under 8 minutes.
# Without a GPU it stops with a clear message (exit 3) unless
# CHECK_ALLOW_NO_GPU=1, which runs everything anyway (tests skip) to show
# that the bundle starts.
# Env: OUT (default /tmp/laserd_check_out), LAYERS (default 32), BENCH_TIMEOUT (330 s).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/bench/gpu/stage
out=${OUT:-/tmp/laserd_check_out}
work=${TMPDIR:-/tmp}/laserd_gpu_check
layers=${LAYERS:-32}
mkdir -p "$out"
t_start=$(date +%s)
fail() {
  echo "check.sh: $1" >&2
  printf '{"ok": false, "error": "%s"}\n' "$1" | tee "$out/report.json"
  exit "${2:-1}"
}
[ -x "$stage/bin/gpu_bench" ] && [ -f "$stage/libs.tar.xz" ] ||
  fail "no staged binaries in $stage: run bench/gpu/stage.sh on the build machine and carry bench/gpu/stage"

gpu="none"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
fi
if [ "$gpu" = "none" ] && [ "${CHECK_ALLOW_NO_GPU:-0}" != 1 ]; then
  fail "no NVIDIA GPU visible (nvidia-smi missing or lists no device); nothing to check here" 3
fi
echo "check.sh: GPU: $gpu" >&2

rm -rf "$work" && mkdir -p "$work" && tar -C "$work" -xJf "$stage/libs.tar.xz" ||
  fail "cannot unpack $stage/libs.tar.xz"

# CUDA's libraries (by soname) and the driver's libcuda.
cudalib=""
for d in ${CUDA_HOME:+$CUDA_HOME/lib64} ${CUDA_HOME:+$CUDA_HOME/lib} /usr/local/cuda/lib64 \
  /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
  /usr/lib/x86_64-linux-gnu; do
  [ -e "$d/libcublas.so.13" ] && { cudalib=$d; break; }
done
[ -n "$cudalib" ] || cudalib=$(dirname "$(ldconfig -p 2>/dev/null | awk '/libcublas.so.13 /{print $NF; exit}')" 2>/dev/null)
missing=""
while read -r so; do
  [ -e "$cudalib/$so" ] || missing="$missing $so"
done <"$stage/cuda_sonames.txt"
[ -z "$missing" ] || [ "$gpu" = "none" ] || fail "CUDA libraries not found in '$cudalib':$missing"
drvlib=$(dirname "$(ldconfig -p 2>/dev/null | awk '/libcuda.so.1 /{print $NF; exit}')" 2>/dev/null)
libpath="$work/lib:$cudalib${drvlib:+:$drvlib}"

# The device's own glibc if it is new enough, else the carried one.
loader=system
run() { LD_LIBRARY_PATH="$libpath" "$@"; }
if ! run "$stage/bin/gpu_bench" --help >/dev/null 2>"$work/probe.err"; then
  loader=carried
  run() {
    local bin=$1
    shift
    "$work/glibc/ld-linux-x86-64.so.2" --library-path "$work/glibc:$libpath" "$bin" "$@"
  }
  run "$stage/bin/gpu_bench" --help >/dev/null 2>>"$work/probe.err" ||
    fail "the staged binaries do not start: $(tr '\n"' ' _' <"$work/probe.err" | head -c 400)"
fi
echo "check.sh: loader $loader, CUDA libraries from $cudalib" >&2

# GPU tests: CUDA vs CPU backend (ops, SVD, bf16), whole fixture models.
tests_json=""
for t in cuda_backend_test cuda_model_test; do
  LASERD_SOURCE_DIR="$root" LASERD_DATA_DIR="$root/.data" timeout 150 \
    bash -c "$(declare -f run); libpath='$libpath'; work='$work'; run '$stage/bin/$t'" \
    >"$out/$t.log" 2>&1
  rc=$?
  passed=$(grep -c '^\[       OK \]' "$out/$t.log")
  failed=$(grep -c '^\[  FAILED  \] [A-Za-z]' "$out/$t.log")
  skipped=$(grep -c '^\[  SKIPPED \] [A-Za-z].*(' "$out/$t.log")
  echo "check.sh: $t rc=$rc passed=$passed failed=$failed skipped=$skipped" >&2
  tests_json="$tests_json${tests_json:+, }\"$t\": {\"rc\": $rc, \"passed\": $passed, \"failed\": $failed, \"skipped\": $skipped}"
done
grep -h "worst fp32 logit" "$out/cuda_model_test.log" >&2 || true

# Benchmarks, within what is left of the 8 minutes.
left=$((460 - ($(date +%s) - t_start)))
budget=${BENCH_TIMEOUT:-$((left < 330 ? left : 330))}
timeout "$budget" bash -c "$(declare -f run); libpath='$libpath'; work='$work'; \
  run '$stage/bin/gpu_bench' --layers $layers --out '$out/gpu_bench.json'" \
  >"$out/gpu_bench.stdout" 2>"$out/gpu_bench.log"
brc=$?
bench=$(tail -1 "$out/gpu_bench.stdout" 2>/dev/null)
[ -n "$bench" ] || bench='{"error": "no output (rc '"$brc"'; timed out after '"$budget"' s if 124)"}'
echo "check.sh: gpu_bench rc=$brc" >&2
printf '{"ok": %s, "date": "%s", "gpu": "%s", "loader": "%s", "cuda_lib_dir": "%s", "seconds": %d, "tests": {%s}, "bench_rc": %d, "bench": %s}\n' \
  "$([ "$brc" = 0 ] && ! grep -q '"failed": [1-9]' <<<"$tests_json" && echo true || echo false)" \
  "$(date -u +%FT%TZ)" "$gpu" "$loader" "$cudalib" "$(($(date +%s) - t_start))" "$tests_json" \
  "$brc" "$bench" | tee "$out/report.json"
