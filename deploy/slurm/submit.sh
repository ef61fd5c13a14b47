#!/usr/bin/env bash
# Submits a sharded LASER sweep to Slurm: an array of N shard tasks
# (laserd-sweep.sbatch, one GPU each), then the merge (laserd-merge.sbatch) with
# --dependency=afterok on the array, i.e. after every task succeeded.
#
#   LASERD_MODEL=/models/SmolLM2-135M-Instruct.Q4_1.gguf LASERD_SPEC=spec.json \
#     deploy/slurm/submit.sh 8 [extra sbatch flags, e.g. --partition=gpu]
#
# LASERD_RESULTS (default ./results) is made absolute here, so both jobs agree on it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
n=${1:?usage: submit.sh N [sbatch flags...]}
shift
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: N must be a positive integer, not '$n'" >&2; exit 2; }
: "${LASERD_MODEL:?set LASERD_MODEL to the model file}"
: "${LASERD_SPEC:?set LASERD_SPEC to the sweep spec}"
LASERD_RESULTS=$(realpath -m "${LASERD_RESULTS:-$PWD/results}")
LASERD_SPEC=$(realpath "$LASERD_SPEC")
export LASERD_MODEL LASERD_SPEC LASERD_RESULTS
mkdir -p "$LASERD_RESULTS"

# --parsable prints "jobid" or "jobid;cluster".
sweep=$(sbatch --parsable --array="0-$((n - 1))" "$@" "$here/laserd-sweep.sbatch")
sweep=${sweep%%;*}
merge=$(sbatch --parsable --dependency="afterok:$sweep" "$@" "$here/laserd-merge.sbatch")
merge=${merge%%;*}
echo "submit.sh: sweep array job $sweep ($n shards), merge job $merge -> $LASERD_RESULTS/results.jsonl"
