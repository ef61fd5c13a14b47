"""Shared fixtures of the integration tests: the built binaries and a tiny model.

Binaries come from $LASERD_BUILD_DIR (default: build), as scripts/test.sh builds them.
What a full build and scripts/test.sh provide (the binaries, `laserd serve`, the fetched
model) skips a test when absent, and fails it under CI (see `missing`).
The model is the tiny Llama fixture (tests/fixtures/models/llama) with a byte-level
tokenizer.json of exactly its 256-token vocabulary, as tests/unit/sweep_test.cc builds it.
"""
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "client" / "python"))

DATA = [
    {"prompt": "The capital of France is", "answer": " Paris"},
    {"prompt": "The capital of Peru is", "answer": " Lima"},
    {"prompt": "Two plus two is", "answer": " four"},
    {"prompt": "Water is", "choices": [" wet", " dry"], "label": 0},
    {"prompt": "The sky is", "answer": " blue"},
    {"prompt": "Fire is", "choices": [" cold", " hot", " blue"], "label": 1},
    {"prompt": "The capital of Italy is", "answer": " Rome"},
    {"prompt": "Snow is", "answer": " white"},
    {"prompt": "The opposite of up is", "answer": " down"},
    {"prompt": "A cat says", "answer": " meow"},
]


def build_dir() -> pathlib.Path:
    d = pathlib.Path(os.environ.get("LASERD_BUILD_DIR", "build"))
    return d if d.is_absolute() else REPO / d


def _byte_char(b: int) -> str:
    # GPT-2 byte-to-unicode map.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + \
        list(range(0xAE, 0x100))
    if b in printable:
        return chr(b)
    n = sum(1 for x in range(b) if x not in printable)
    return chr(256 + n)


def in_ci() -> bool:
    """The CI environment variable is set to something other than "", "0" or "false"."""
    return os.environ.get("CI", "") not in ("", "0", "false")


def missing(message: str):
    """Something a full build and scripts/test.sh provide is absent: skips the test with
    `message`, or fails it under CI (which runs scripts/test.sh, so nothing may be absent)."""
    if in_ci():
        pytest.fail(f"{message} (CI={os.environ['CI']}: required in CI)")
    pytest.skip(message)


def built(*parts: str) -> pathlib.Path:
    """A binary of the build directory (`missing` when it is not built)."""
    p = build_dir().joinpath(*parts)
    if not p.exists():
        missing(f"{p} is not built (set LASERD_BUILD_DIR)")
    return p


@pytest.fixture(scope="session")
def laserd_bin() -> pathlib.Path:
    return built("server", "laserd")


@pytest.fixture(scope="session")
def laserctl_bin() -> pathlib.Path:
    return built("client", "laserctl")


def has_subcommand(binary: pathlib.Path, name: str) -> bool:
    """Whether `binary --help` lists the subcommand (CLI11 answers `X --help` for an
    unknown X with the main help and exit 0, so that is no test)."""
    r = subprocess.run([str(binary), "--help"], capture_output=True, text=True)
    return any(line.split()[:1] == [name] for line in r.stdout.splitlines()
               if line.startswith("  "))


def require_subcommands(binary: pathlib.Path, *names: str):
    """`missing` unless `binary --help` lists every one of the subcommands."""
    absent = [n for n in names if not has_subcommand(binary, n)]
    if absent:
        missing(f"{binary} has no `{'`/`'.join(absent)}` subcommand")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("tiny_llama")
    src = REPO / "tests" / "fixtures" / "models" / "llama"
    for f in ("config.json", "model.safetensors"):
        shutil.copy(src / f, d / f)
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
          "use_regex": True}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
           "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
           "model": {"type": "BPE", "dropout": None, "unk_token": None,
                     "continuing_subword_prefix": None, "end_of_word_suffix": None,
                     "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": {_byte_char(b): b for b in range(256)}, "merges": []}}
    (d / "tokenizer.json").write_text(json.dumps(tok))
    return d


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> pathlib.Path:
    p = tmp_path_factory.mktemp("data") / "data.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in DATA))
    return p


def tiny_spec(data: pathlib.Path) -> dict:
    """Every layer and matrix type of the tiny model at three ranks."""
    return {"dataset": {"path": str(data)}, "layers": {"ranges": [{"start": 0}]},
            "rho": {"values": [0.05, 0.3, 0.95]}, "svd": {"method": "SVD_METHOD_EXACT"},
            "split": {"validation_fraction": 0.3}, "batch": {"max_batch_tokens": 64}}


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# How the tests start the server. The one place to change if `laserd serve`'s flags do.
def serve_command(laserd, model, port, state_dir, data_dir):
    return [str(laserd), "serve", "--model", str(model), "--listen", f"127.0.0.1:{port}",
            "--state-dir", str(state_dir), "--data-dir", str(data_dir), "--device", "cpu"]


@contextlib.contextmanager
def started(argv, log_path: pathlib.Path, env=None):
    """Runs `argv` with its stdout and stderr in `log_path`; yields the process and
    stops it (`stop`) when the block ends."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        try:
            yield proc
        finally:
            stop(proc)


def wait_ready(proc, log_path: pathlib.Path, ready, timeout=60, interval=0.2,
               what="laserd serve"):
    """Calls `ready()` every `interval` seconds until it returns a true value, and returns
    that value. Fails the test, with the end of the log, when the process exits first or
    `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready in {timeout} s: {log_path.read_text()[-2000:]}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def server(laserd_bin, tiny_model, tiny_data, tmp_path_factory):
    """A `laserd serve` on a free loopback port with the tiny model; yields HOST:PORT once
    ModelService answers (the model is resident); `missing` when `laserd serve` does not
    exist."""
    require_subcommands(laserd_bin, "serve")
    import grpc
    from laserd_client.v1 import model_pb2, model_pb2_grpc

    port = free_port()
    state = tmp_path_factory.mktemp("state")
    target = f"127.0.0.1:{port}"

    def model_resident():
        try:
            stub.DescribeModel(model_pb2.DescribeModelRequest(), timeout=2)
            return True
        except grpc.RpcError:
            return False

    with started(serve_command(laserd_bin, tiny_model, port, state, tiny_data.parent),
                 state / "server.log") as proc:
        with grpc.insecure_channel(target) as channel:
            stub = model_pb2_grpc.ModelServiceStub(channel)
            wait_ready(proc, state / "server.log", model_resident)
        yield target


def stop(proc):
    """Terminates a started server (SIGTERM, then SIGKILL after 20 s) and reaps it."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def headless_results(laserd, model, spec_dict, tmp_path):
    """Runs `laserd sweep` on the spec; returns (header Job, [Result]) from its file."""
    from google.protobuf import json_format
    from laserd_client.v1 import sweep_pb2

    spec = tmp_path / "headless_spec.json"
    spec.write_text(json.dumps(spec_dict))
    out = tmp_path / "headless.jsonl"
    r = subprocess.run([str(laserd), "sweep", "--model", str(model), "--spec", str(spec),
                        "--out", str(out), "--device", "cpu", "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    header = json_format.Parse(lines[0], sweep_pb2.Job())
    return header, [json_format.Parse(l, sweep_pb2.Result()) for l in lines[1:]]


def comparable(result):
    """A Result without what legitimately differs between the server and a headless
    run: the job id, timings and the commit time."""
    from laserd_client.v1 import sweep_pb2

    r = sweep_pb2.Result()
    r.CopyFrom(result)
    for f in ("job_id", "svd_duration", "eval_duration", "create_time", "shard_index"):
        r.ClearField(f)
    return r
