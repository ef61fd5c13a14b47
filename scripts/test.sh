#!/usr/bin/env bash
# Runs every test of laserd on a fresh Debian 12 machine (this is what CI runs):
# installs the system dependencies, fetches the real model, builds the capitals
# datasets, configures and builds with CMake/Ninja (Release) in ./build, runs ctest,
# then pytest (client/python/tests and tests/integration).
#
# Environment: BUILD_DIR (default build), LASERD_JOBS (parallel build jobs, default 2),
# LASERD_DATA_DIR (fetched model and generated data, default .data),
# CMAKE_ARGS (extra configure arguments, e.g. -DLASERD_WITH_CUDA=OFF).
#
# docs/testing.md: the faster subsets (ctest labels) for working on one part, and which
# missing parts skip a test and which fail it (under CI, nothing may be missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=${BUILD_DIR:-build}
jobs=${LASERD_JOBS:-2}
export LASERD_DATA_DIR=${LASERD_DATA_DIR:-$PWD/.data}

scripts/setup.sh
scripts/fetch_model.sh
python3 scripts/make_capitals.py --out "$LASERD_DATA_DIR/capitals.jsonl"
python3 scripts/make_capitals.py --choice --out "$LASERD_DATA_DIR/capitals_choice.jsonl"

# shellcheck disable=SC2086  # CMAKE_ARGS is a list of arguments
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLASERD_DATA_DIR="$LASERD_DATA_DIR" ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$jobs"

log=$build_dir/ctest.log
rc=0
ctest --test-dir "$build_dir" --output-on-failure 2>&1 | tee "$log" || rc=$?
echo
echo "test: $(grep -E 'tests passed|No tests were found' "$log" | tail -n 1 || echo 'no ctest summary')"

# Python: the client package's tests and the integration tests against the built
# binaries (laserd serve, laserctl). pytest's exit code 5 (no tests collected) is not a
# failure; a test that needs a missing optional part skips and says why (-rs).
py_rc=0
LASERD_BUILD_DIR=$build_dir PYTHONPATH=$PWD/client/python${PYTHONPATH:+:$PYTHONPATH} \
  python3 -m pytest -rs -p no:cacheprovider client/python/tests tests/integration || py_rc=$?
if ((py_rc == 5)); then py_rc=0; fi
echo "test: pytest exit code $py_rc"
if ((rc == 0)); then rc=$py_rc; fi
exit "$rc"
