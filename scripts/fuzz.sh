#!/usr/bin/env bash
# Builds a libFuzzer target with clang-14 (ASan + UBSan) in build-fuzz/ and runs it for
# SECONDS, one job, seeded with the fixtures of its format (docs/fuzzing.md). The corpus
# grows in build-fuzz/corpus/TARGET; findings (crash-*, leak-*, timeout-*) land in
# build-fuzz/.
#   scripts/fuzz.sh fuzz_gguf 600
#   scripts/fuzz.sh fuzz_http 600     # the HTTP dashboard/API (server/http_api.cc)
#   scripts/fuzz.sh fuzz_rpc 600      # every laser.v1 RPC's request (server/*_handlers.cc)
set -euo pipefail
TARGET=${1:?usage: scripts/fuzz.sh fuzz_gguf|fuzz_safetensors|fuzz_dataset|fuzz_tokenizer_json|fuzz_spec|fuzz_http|fuzz_rpc SECONDS}
SECONDS_TO_RUN=${2:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-fuzz
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DLASERD_FUZZ=ON -DLASERD_WITH_CUDA=OFF -DLASERD_BUILD_TESTS=OFF -DLASERD_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" --target "$TARGET" -j2
CORPUS=$BUILD/corpus/$TARGET
SEEDS=$BUILD/seeds/$TARGET
mkdir -p "$CORPUS" "$SEEDS"
FIX=$ROOT/tests/fixtures/formats
case "$TARGET" in
  fuzz_gguf) cp "$FIX"/*.gguf "$SEEDS"/ ;;
  fuzz_safetensors) cp "$FIX"/*.safetensors "$FIX"/sharded/*.safetensors "$SEEDS"/ ;;
  fuzz_dataset)
    # Seeds: a few records of every kind, and the first lines of the capitals set.
    printf '%s\n' '{"prompt": "The capital of France is", "answer": " Paris"}' \
      '{"prompt": "Q: Is Paris in France?\nA:", "choices": [" Yes", " No"], "label": 0}' \
      '{"question": "Paris is the capital of", "gold-answer": "France"}' >"$SEEDS/mixed.jsonl"
    head -c 4000 "$ROOT/tests/fixtures/smollm2_capitals_reference.json" >"$SEEDS/json.txt" ;;
  fuzz_tokenizer_json) cp "$ROOT"/tests/fixtures/tokenizer/*.json "$SEEDS"/ 2>/dev/null || true ;;
  fuzz_spec) cp "$ROOT"/tests/fixtures/specs/* "$SEEDS"/ ;;
  fuzz_http|fuzz_rpc)
    # The target writes its own seeds (a request for every route or RPC, with the
    # fixture ids it creates); kept reproducers of past findings are committed.
    LASERD_FUZZ_WRITE_SEEDS="$SEEDS" "$BUILD/tests/fuzz/$TARGET"
    if [ -d "$ROOT/tests/fixtures/fuzz/$TARGET" ]; then
      cp "$ROOT/tests/fixtures/fuzz/$TARGET"/* "$SEEDS"/
    fi ;;
  *) echo "unknown target $TARGET" >&2; exit 2 ;;
esac
cd "$BUILD"
set +e
"$BUILD/tests/fuzz/$TARGET" -jobs=1 -workers=1 -max_total_time="$SECONDS_TO_RUN" \
  -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$BUILD/" "$CORPUS" "$SEEDS"
rc=$?
set -e
LOG=$BUILD/fuzz-0.log
tail -n 25 "$LOG"
if ls "$BUILD"/crash-* "$BUILD"/leak-* "$BUILD"/timeout-* "$BUILD"/oom-* >/dev/null 2>&1; then
  echo "FINDINGS in $BUILD" >&2
  exit 1
fi
exit $rc
