"""Mixture-of-experts sweeps through the server: `laserd serve` on the tiny Mixtral
fixture, a sweep submitted with `laserctl submit --experts` streams one result per
selected expert with Intervention.expert set, equals the headless `laserd sweep` of the
same spec, ListResults filters by "moe.out" (every expert) and "moe.out[2]" (one), and
`laserctl results` shows "moe.out[2]" in its table and an expert column in CSV. Skips
when `laserd serve` does not exist."""
import json
import shutil
import subprocess

import pytest

from conftest import (comparable, free_port, headless_results, require_subcommands, started,
                      REPO, wait_ready)
from laserd_client import Client


@pytest.fixture(scope="module")
def mixtral(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_mixtral")
    src = REPO / "tests" / "fixtures" / "models" / "mixtral"
    for f in ("config.json", "model.safetensors"):
        shutil.copy(src / f, d / f)
    shutil.copy(tiny_model / "tokenizer.json", d / "tokenizer.json")
    return d


@pytest.fixture(scope="module")
def moe_server(laserd_bin, mixtral, tiny_data, tmp_path_factory):
    require_subcommands(laserd_bin, "serve")
    port = free_port()
    state = tmp_path_factory.mktemp("moe_state")
    target = f"127.0.0.1:{port}"
    argv = [laserd_bin, "serve", "--model", mixtral, "--listen", target, "--state-dir", state,
            "--data-dir", tiny_data.parent, "--device", "cpu"]

    def resident():
        try:
            with Client(target) as c:
                return c.model() is not None
        except Exception:  # not listening yet
            return False

    with started(argv, state / "server.log") as proc:
        wait_ready(proc, state / "server.log", resident)
        yield target


def test_expert_sweep_through_the_server(moe_server, laserctl_bin, laserd_bin, mixtral,
                                         tiny_data, tmp_path):
    spec = {"dataset": {"path": str(tiny_data)}, "matrix_types": ["moe.out", "moe.router"],
            "layers": {"indices": [1]}, "rho": {"values": [0.25]},
            "svd": {"method": "SVD_METHOD_EXACT"}, "split": {"validation_fraction": 0.3}}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    r = subprocess.run([str(laserctl_bin), "--server", moe_server, "submit", "--spec",
                        str(spec_file), "--experts", "2,0", "--watch", "--format", "json",
                        "--quiet"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.splitlines()[0]
    with Client(moe_server) as c:
        got = c.list_results(job_id)
        assert [(g.intervention.matrix_type,
                 g.intervention.expert if g.intervention.HasField("expert") else None)
                for g in got] == [("moe.router", None), ("moe.out", 0), ("moe.out", 2)]
        assert [g.intervention.expert for g in c.list_results(job_id, matrix_types=["moe.out"])] \
            == [0, 2]
        one = c.list_results(job_id, matrix_types=["moe.out[2]"])
        assert [(g.intervention.matrix_type, g.intervention.expert) for g in one] == \
            [("moe.out", 2)]
    _, expected = headless_results(laserd_bin, mixtral, dict(spec, experts=[2, 0]), tmp_path)
    assert [comparable(g) for g in got] == [comparable(e) for e in expected]

    table = subprocess.run([str(laserctl_bin), "--server", moe_server, "results", job_id],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "moe.out[2]" in table.stdout and "moe.router" in table.stdout
    csv = subprocess.run([str(laserctl_bin), "--server", moe_server, "results", job_id,
                          "--format", "csv"], capture_output=True, text=True, timeout=60)
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.splitlines()
    cols = lines[0].split(",")
    expert_col, type_col = cols.index("expert"), cols.index("matrix_type")
    assert [(l.split(",")[type_col], l.split(",")[expert_col]) for l in lines[1:]] == \
        [("moe.router", ""), ("moe.out", "0"), ("moe.out", "2")]
