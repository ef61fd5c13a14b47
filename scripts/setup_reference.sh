#!/usr/bin/env bash
# Installs the Python reference implementation used ONLY to regenerate the committed
# test fixtures (scripts/fixtures/*): Hugging Face transformers + torch, tokenizers,
# gguf, safetensors, numpy. The build, the tests and CI do not need any of this:
# they compare against the committed outputs.
#
# Idempotent: pip skips requirements that are already satisfied. Versions are the
# ones the committed fixtures were produced with. torch is large; for a CPU-only
# wheel point pip at a CPU wheel index with pip's own PIP_INDEX_URL /
# PIP_EXTRA_INDEX_URL environment variables.
#
# With --with-llama-cpp it also installs llama-cpp-python (compiles llama.cpp; slow),
# the tokenization peer for GGUF models (load with vocab_only=True).
set -euo pipefail

"$(dirname "${BASH_SOURCE[0]}")/setup.sh"

requirements=(
  torch==2.15.0
  transformers==5.24.0
  tokenizers==0.23.3
  gguf==0.19.0
  safetensors==0.8.0
  sentencepiece==0.2.3
  numpy==2.4.6
  accelerate==1.15.0
)
if [[ ${1:-} == --with-llama-cpp ]]; then
  requirements+=(llama-cpp-python)
fi

python=python3
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "setup_reference: $python has no pip" >&2
  exit 1
fi

# Debian's system python refuses global installs (PEP 668); a pyenv/venv python does not.
extra=()
if [[ $("$python" -c 'import sys; print(sys.prefix)') == /usr ]]; then
  extra=(--break-system-packages)
fi
"$python" -m pip install --disable-pip-version-check "${extra[@]}" "${requirements[@]}"
"$python" - <<'PY'
import torch, transformers, tokenizers, gguf
print("setup_reference: torch", torch.__version__, "transformers", transformers.__version__,
      "tokenizers", tokenizers.__version__)
PY
