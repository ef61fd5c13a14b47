#!/usr/bin/env bash
# The main job (README): on a fresh Debian 12 machine, install the dependencies,
# fetch SmolLM2-135M-Instruct (Q4_1 GGUF), build laserd (Ninja, Release, ./build),
# build the capitals dataset and score the model on it, printing the metrics per
# split (validation = first 20%, test = the rest, all).
#
# Extra arguments are passed to `laserd eval` (e.g. --json, --per-example FILE,
# --split shuffle --seed 7, --device cpu).
# Environment: BUILD_DIR (default build), LASERD_JOBS (parallel build jobs, default 2),
# LASERD_DATA_DIR (fetched model and generated data, default .data),
# CMAKE_ARGS (extra configure arguments, e.g. -DLASERD_WITH_CUDA=OFF).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=${BUILD_DIR:-build}
jobs=${LASERD_JOBS:-2}
data_dir=${LASERD_DATA_DIR:-.data}
export LASERD_DATA_DIR=$data_dir

scripts/setup.sh
scripts/fetch_model.sh
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of arguments
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build_dir" --target laserd -j "$jobs"
python3 scripts/make_capitals.py --out "$data_dir/capitals.jsonl"

exec "$build_dir/server/laserd" eval \
  --model "$data_dir/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  --data "$data_dir/capitals.jsonl" "$@"
