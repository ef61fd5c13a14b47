#!/usr/bin/env bash
# The main job (README): on a fresh Debian 12 machine, install what is needed, fetch
# SmolLM2-135M-Instruct and build the capitals dataset, start `laserd serve` on the
# real model, submit a LASER sweep with `laserctl`, stream its results as they come,
# and print the best interventions against the baseline.
#
#   scripts/run.sh             the served sweep (laserd serve + laserctl)
#   scripts/run.sh --headless  the same sweep with `laserd sweep` (no server)
#   scripts/run.sh --eval      only score the unedited model (`laserd eval`)
#
# Environment: BUILD_DIR (build), LASERD_JOBS (2), LASERD_DATA_DIR (.data),
# CMAKE_ARGS, LASERD_PORT (50151), LASERD_MODEL (smollm2 | gemma3: the sweep on
# Gemma 3 270M Q4_K_M instead, the same matrix types on its last four layers 14-17).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=${BUILD_DIR:-build}
jobs=${LASERD_JOBS:-2}
data_dir=${LASERD_DATA_DIR:-.data}
port=${LASERD_PORT:-50151}
mode=${1:-served}
export LASERD_DATA_DIR=$data_dir

scripts/setup.sh
scripts/fetch_model.sh
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of arguments
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build_dir" --target laserd laserctl -j "$jobs"
python3 scripts/make_capitals.py --out "$data_dir/capitals.jsonl"

model="$data_dir/models/SmolLM2-135M-Instruct.Q4_1.gguf"
first_layer=26
case "${LASERD_MODEL:-smollm2}" in
  smollm2) ;;
  gemma3)
    model="$data_dir/models/gemma-3-270m-q4_k_m.gguf"
    first_layer=14
    ;;
  *)
    echo "LASERD_MODEL must be smollm2 or gemma3" >&2
    exit 2
    ;;
esac
data=$(realpath "$data_dir/capitals.jsonl")
laserd="$build_dir/server/laserd"
laserctl="$build_dir/client/laserctl"
# The sweep: four matrix types of the last four layers at three kept fractions, then
# greedy composition of the best single interventions.
types=mlp.in,mlp.out,attn.q,attn.o
layers=$first_layer:
rho=0.01,0.1,0.5

case "$mode" in
  --eval)
    exec "$laserd" eval --model "$model" --data "$data"
    ;;
  --headless)
    spec=$(mktemp --suffix=.json)
    cat >"$spec" <<JSON
{"dataset": {"path": "$data"}, "matrix_types": ["mlp.in", "mlp.out", "attn.q", "attn.o"],
 "layers": {"ranges": [{"start": $first_layer}]}, "rho": {"values": [0.01, 0.1, 0.5]},
 "composition": {"mode": "COMPOSITION_MODE_GREEDY"}}
JSON
    out="$data_dir/sweep_results.jsonl"
    rm -f "$out"
    "$laserd" sweep --model "$model" --spec "$spec" --out "$out"
    echo "results: $out"
    exit 0
    ;;
  served) ;;
  *)
    echo "usage: scripts/run.sh [--headless | --eval]" >&2
    exit 2
    ;;
esac

state=$(mktemp -d)
"$laserd" serve --model "$model" --state-dir "$state" --data-dir "$(dirname "$data")" \
  --listen "127.0.0.1:$port" --http-listen "127.0.0.1:$((port + 1))" \
  >"$state/laserd.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
export LASERD_SERVER="127.0.0.1:$port"
echo "laserd serve started (pid $server, log $state/laserd.log); waiting for the model..." >&2
for _ in $(seq 1 120); do
  if "$laserctl" model >/dev/null 2>&1; then break; fi
  kill -0 "$server" 2>/dev/null || { cat "$state/laserd.log" >&2; exit 1; }
  sleep 1
done
"$laserctl" model
job=$("$laserctl" submit --dataset-path "$data" --matrix-types "$types" --layers "$layers" \
  --rho "$rho" --composition greedy --label run=main)
echo "submitted job $job; streaming results (live dashboard at http://127.0.0.1:$((port + 1))/ , metrics at /metrics)" >&2
"$laserctl" watch "$job"
echo
echo "Best interventions by validation accuracy (then log-loss):"
"$laserctl" results "$job" --order-by "validation.accuracy desc, validation.log_loss" \
  >"$state/results.txt"
head -n 12 "$state/results.txt"
"$laserctl" get "$job"
