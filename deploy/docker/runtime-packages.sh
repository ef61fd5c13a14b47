#!/usr/bin/env bash
# Prints, one per line, the Debian/Ubuntu packages that own the shared libraries the
# given binaries load (ldd), so that the runtime stage of the Dockerfile installs
# exactly those and no -dev package. Libraries under /usr/local/cuda* (the CUDA toolkit:
# cudart, cuBLAS, cuSOLVER) are left out: the CUDA runtime base image has them.
#
# Fails when a library is not found or no package owns it, so a missing runtime
# library is an image build error, not a container that cannot start.
#
#   deploy/docker/runtime-packages.sh build/server/laserd build/client/laserctl
set -euo pipefail

(($# > 0)) || { echo "usage: $0 BINARY..." >&2; exit 2; }

# Every library, with the names dpkg may know it by: with merged /usr, its /lib path,
# its /usr/lib path, or the symlink's target (e.g. an alternatives link to OpenBLAS).
declare -A candidates=()
libs=()
for bin in "$@"; do
  [[ -x $bin ]] || { echo "runtime-packages: $bin is not an executable" >&2; exit 1; }
  out=$(ldd "$bin")
  if grep -q 'not found' <<<"$out"; then
    echo "runtime-packages: $bin: unresolved libraries:" >&2
    grep 'not found' <<<"$out" >&2
    exit 1
  fi
  while read -r lib; do
    real=$(readlink -f "$lib")
    [[ $real == /usr/local/cuda* ]] && continue
    libs+=("$lib")
    candidates[$lib]="$lib $real /usr${lib} ${lib#/usr} /usr${real} ${real#/usr}"
  done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$out")
done
((${#libs[@]} > 0)) || exit 0

# One dpkg-query for all of them (each call reads the whole database).
# shellcheck disable=SC2046  # the candidate lists are words on purpose
mapfile -t owned < <(dpkg-query -S $(printf '%s\n' "${candidates[@]}" | tr ' ' '\n' | sort -u) \
  2>/dev/null || true)
declare -A owner=()
for line in "${owned[@]}"; do
  # "libgrpc++1.51:amd64: /usr/lib/x86_64-linux-gnu/libgrpc++.so.1.51.1"
  pkg=${line%%: *}
  owner[${line#*: }]=${pkg%%:*}
done

declare -A packages=()
for lib in "${libs[@]}"; do
  found=""
  for c in ${candidates[$lib]}; do
    if [[ -n ${owner[$c]:-} ]]; then found=${owner[$c]}; break; fi
  done
  [[ -n $found ]] || { echo "runtime-packages: no package owns $lib" >&2; exit 1; }
  packages[$found]=1
done

printf '%s\n' "${!packages[@]}" | sort
