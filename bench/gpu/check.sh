#!/usr/bin/env bash
# The prepared device check: one call on a GPU machine (CUDA 13 driver and
# libraries, python3 with PyTorch and transformers), at most CHECK_SECONDS
# (default 420 s), one JSON report. Stage first, here: bench/gpu/stage.sh;
# then on the device, from the repository root, with
# `carry: ["bench/gpu/stage"]`:   OUT=$OUT bench/gpu/check.sh
# Steps, in order, each in its own process with its own time limit (what is
# left of the budget, less a reserve for the steps after it); a step that
# fails or runs out of time is recorded and the next one runs:
#   smoke             does CUDA initialise; which libraries were loaded
#   cuda_backend_test, cuda_model_test   every GPU test (CUDA_LAUNCH_BLOCKING=1)
#   prepare           the sweep dataset and the token sequences both sides score
#   smollm2           a real-weights SmolLM2 slice: CUDA fp32 and bf16 vs CPU
#   gemm              bf16 GEMM rate (cuBLAS direct and laserd's Linear)
#   model             Llama-2-7B-shaped random model: forward and sweep (laserd)
#   torch_peer        torch GEMM, transformers forward, the paper's method and a
#                     careful transformers sweep on the same GPU
#   svd               every GPU SVD route, single and batched
# Report: $OUT/report.json (bench/gpu/report.py assembles it) and every log
# in $OUT/logs.tar.gz. Exit status 0 when every step passed.
# Without a GPU it stops (exit 3) unless CHECK_ALLOW_NO_GPU=1: then every
# step runs, the GPU ones are skipped with their reason, and the model and
# peer steps rehearse their code on the CPU with tiny shapes.
# Env: OUT (default /tmp/laserd_check_out), LAYERS (32), CHECK_SECONDS (420).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
stage=$root/bench/gpu/stage
out=${OUT:-/tmp/laserd_check_out}
work=${TMPDIR:-/tmp}/laserd_gpu_check
logs=$work/logs
layers=${LAYERS:-32}
t_start=$(date +%s)
deadline=$((t_start + ${CHECK_SECONDS:-420}))
rm -rf "$work" && mkdir -p "$out" "$logs"
steps=$logs/steps.jsonl
: >"$steps"
report() {  # exit status: report.py's (0 when nothing failed)
  local rc
  python3 "$root/bench/gpu/report.py" assemble --logs "$logs" --out "$out/report.json" \
    --stage "$stage/stage.json" "$@"
  rc=$?
  tar -C "$work" -czf "$out/logs.tar.gz" logs 2>/dev/null
  return $rc
}
# step NAME RC SECONDS [key=value...]: one record of steps.jsonl.
step() {
  python3 "$root/bench/gpu/report.py" step --file "$steps" --name "$1" --rc "$2" --seconds "$3" \
    "${@:4}"
}
fatal() {
  echo "check.sh: $1" >&2
  step setup 1 0 "error=$1"
  report
  exit "${2:-1}"
}
command -v python3 >/dev/null || {
  echo '{"ok": false, "error": "no python3 on this machine"}' >"$out/report.json"
  exit 1
}
[ -x "$stage/bin/gpu_bench" ] && [ -f "$stage/libs.tar.xz" ] ||
  fatal "no staged binaries in $stage: run bench/gpu/stage.sh here and carry bench/gpu/stage"

gpu=none
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
fi
rehearse=0
if [ "$gpu" = none ]; then
  [ "${CHECK_ALLOW_NO_GPU:-0}" = 1 ] ||
    fatal "no NVIDIA GPU visible (nvidia-smi missing or lists no device); nothing to check here" 3
  rehearse=1
fi
echo "check.sh: GPU: $gpu" >&2
unpack() {  # tar's xz, else Python's (an image may lack the xz program)
  tar -C "$work" -xJf "$1" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$work"
}
unpack "$stage/libs.tar.xz" || fatal "cannot unpack $stage/libs.tar.xz"
[ ! -f "$stage/data.tar.xz" ] || unpack "$stage/data.tar.xz" || fatal "cannot unpack data.tar.xz"

# CUDA's libraries, by soname: the toolkit's folders, the pip nvidia-* packages
# of the device's PyTorch, the inherited path, ldconfig. The driver's libcuda
# also from /usr/local/nvidia.
candidates=()
for d in ${CUDA_HOME:+$CUDA_HOME/lib64 $CUDA_HOME/lib} /usr/local/cuda/lib64 /usr/local/cuda/lib \
  /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/lib \
  /usr/local/cuda-13*/targets/x86_64-linux/lib; do
  candidates+=("$d")
done
while read -r d; do candidates+=("$d"); done < <(python3 -c '
import glob, os
try:
    import nvidia
    for p in nvidia.__path__:
        for d in sorted(glob.glob(os.path.join(p, "*", "lib"))):
            print(d)
except Exception:
    pass' 2>/dev/null)
IFS=: read -ra inherited <<<"${LD_LIBRARY_PATH:-}"
candidates+=("${inherited[@]}" /usr/local/nvidia/lib64 /usr/local/nvidia/lib
  /usr/lib/x86_64-linux-gnu /usr/lib64)
libdirs=()
missing=()
add_dir() {
  local d
  for d in "${libdirs[@]}"; do [ "$d" = "$1" ] && return; done
  libdirs+=("$1")
}
find_lib() {  # soname -> its folder, or nothing
  local d
  for d in "${candidates[@]}"; do
    [ -n "$d" ] && [ -e "$d/$1" ] && { echo "$d"; return; }
  done
  ldconfig -p 2>/dev/null | awk -v so="$1" '$1 == so {print $NF; exit}' | xargs -r dirname
}
for so in $(cat "$stage/cuda_sonames.txt") libcuda.so.1; do
  d=$(find_lib "$so")
  if [ -n "$d" ]; then add_dir "$d"; else missing+=("$so"); fi
done
cudadirs=$(IFS=:; echo "${libdirs[*]}")
# The staged C++ runtime only if the device's own does not start the binaries.
mkdir -p "$work/cxx"
mv "$work"/lib/libstdc++.so.* "$work"/lib/libgcc_s.so.* "$work/cxx/" 2>/dev/null
libpath="$work/lib${cudadirs:+:$cudadirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# run.sh runs a staged binary with these libraries (the device's glibc, else the carried one).
wrapper() {  # wrapper LIBPATH [LOADER]
  printf '#!/usr/bin/env bash\nexport LD_LIBRARY_PATH=%q\n' "$1" >"$work/run.sh"
  if [ -n "${2:-}" ]; then
    printf 'exec %q --library-path %q "$@"\n' "$2" "$work/glibc:$1" >>"$work/run.sh"
  else
    echo 'exec "$@"' >>"$work/run.sh"
  fi
  chmod +x "$work/run.sh"
}
probe() { "$work/run.sh" "$stage/bin/gpu_bench" --help >/dev/null 2>>"$logs/probe.log"; }
loader=system
wrapper "$libpath"
if ! probe; then
  libpath="$work/lib:$work/cxx${cudadirs:+:$cudadirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  loader=system+staged_cxx
  wrapper "$libpath"
  if ! probe; then
    loader=carried_glibc
    wrapper "$libpath" "$work/glibc/ld-linux-x86-64.so.2"
    probe || fatal "the staged binaries do not start: $(tail -c 400 "$logs/probe.log")"
  fi
fi
LD_LIBRARY_PATH="$libpath" ldd "$stage"/bin/* >"$logs/ldd.log" 2>&1
not_found=$(awk '/not found/{print $1}' "$logs/ldd.log" | sort -u | tr '\n' ' ')
step setup 0 $(($(date +%s) - t_start)) "gpu=$gpu" "loader=$loader" "cuda_lib_dirs=$cudadirs" \
  "missing_cuda_libraries=${missing[*]:-}" "ldd_not_found=$not_found" "rehearsal=$rehearse"
echo "check.sh: loader $loader; CUDA libraries from $cudadirs; missing: ${missing[*]:-none}" >&2

# budget CAP RESERVE: seconds for the next step (at most CAP, leaving RESERVE
# for the steps after it); 0 when fewer than 10 are left.
budget() {
  local left=$((deadline - $(date +%s) - $2))
  [ "$left" -gt "$1" ] && left=$1
  [ "$left" -lt 10 ] && left=0
  echo "$left"
}
# timed NAME CAP RESERVE CMD...: runs CMD under its budget (an argument
# @BUDGET@ becomes that budget less 5 s, for the step's own deadline), records the step.
timed() {
  local name=$1 cap=$2 reserve=$3
  shift 3
  local b t0 rc
  b=$(budget "$cap" "$reserve")
  if [ "$b" = 0 ]; then
    step "$name" -1 0 "skipped=no time left of the ${CHECK_SECONDS:-420} s budget"
    return
  fi
  t0=$(date +%s)
  local args=() a
  for a in "$@"; do args+=("${a//@BUDGET@/$((b > 15 ? b - 5 : 10))}"); done
  timeout --kill-after=5 "$b" "${args[@]}" >"$logs/$name.log" 2>&1
  rc=$?
  step "$name" "$rc" $(($(date +%s) - t0)) "budget=$b" "log=$name.log"
  echo "check.sh: $name rc=$rc ($(($(date +%s) - t0)) s of $b)" >&2
}
gb=("$work/run.sh" "$stage/bin/gpu_bench")

# 1. Smoke, with the loader's account of every library it loaded.
timed smoke 30 300 env LD_DEBUG=libs LD_DEBUG_OUTPUT="$logs/ld_debug" "${gb[@]}" \
  --section smoke --out "$logs/smoke.json"

# 2. The GPU tests, each binary in its own process.
for t in cuda_backend_test:100:240 cuda_model_test:80:170; do
  IFS=: read -r name cap reserve <<<"$t"
  CUDA_LAUNCH_BLOCKING=1 LASERD_SOURCE_DIR="$root" LASERD_DATA_DIR="$work/data" \
    LASERD_SMOLLM2_GGUF="$work/data/smollm2_slice.gguf" \
    timed "$name" "$cap" "$reserve" "$work/run.sh" "$stage/bin/$name" \
    --gtest_output="json:$logs/$name.json"
done

# 3. Benchmarks. Without a GPU the model and peer steps rehearse on tiny shapes.
shape=(--layers "$layers")
fwd=()
backend=cuda
peer=(--device cuda)
if [ "$rehearse" = 1 ]; then
  shape=(--layers 2 --hidden 64 --intermediate 160 --heads 4 --vocab 4096)
  fwd=(--forward-seqs 4 --forward-len 32)
  backend=cpu
  peer=(--device cpu --gemm-size 256)
fi
sweep=(--sequences "$work/sequences.json" --data "$work/data.jsonl"
  --tokenizer "$root/tests/fixtures/tokenizer/llama2_spm.json")
timed prepare 20 200 "${gb[@]}" --section prepare --out "$logs/prepare.json" "${sweep[@]}" \
  "${shape[@]}" "${fwd[@]}" --examples 64
timed smollm2 60 190 "${gb[@]}" --section smollm2 --out "$logs/smollm2.json" --budget @BUDGET@ \
  --backend "$backend" --gguf "$work/data/smollm2_slice.gguf" \
  --smollm2-data "$work/data/capitals.jsonl"
timed gemm 30 170 "${gb[@]}" --section gemm --out "$logs/gemm.json" --budget @BUDGET@ \
  "${shape[@]}" "${fwd[@]}"
timed model 110 130 "${gb[@]}" --section model --out "$logs/model.json" --budget @BUDGET@ \
  --backend "$backend" "${sweep[@]}" "${shape[@]}" "${fwd[@]}"
timed torch_peer 150 40 env PYTHONUNBUFFERED=1 python3 "$root/bench/gpu/torch_peer.py" \
  --sequences "$work/sequences.json" --out "$logs/torch_peer.json" "${peer[@]}" \
  --budget @BUDGET@
timed svd 90 5 "${gb[@]}" --section svd --out "$logs/svd.json" --budget @BUDGET@ \
  --svd-batch "$layers" "${shape[@]}"

report --gpu "$gpu"
rc=$?
cat "$out/report.json"
exit $rc
