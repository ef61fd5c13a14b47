"""laserd_client parts that need no server: spec building, row flattening, the
resume cursor, and the committed stubs matching the proto."""
import filecmp
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import laserd_client  # noqa: E402
from laserd_client import COLUMNS, ResultCursor, build_spec, flatten_result  # noqa: E402
from laserd_client.v1 import sweep_pb2  # noqa: E402


def test_build_spec_from_dict_json_and_proto():
    d = {"dataset": {"path": "/data/capitals.jsonl"},
         "matrixTypes": ["mlp.in", "attn.q"],
         "layers": {"ranges": [{"start": 22}], "indices": [3]},
         "rho": {"values": [0.01, 0.5]},
         "svd": {"method": "SVD_METHOD_EXACT", "seed": "7"},
         "split": {"validation_fraction": 0.25},
         "labels": {"team": "nlp"}}
    spec = build_spec(d)
    assert spec.dataset.path == "/data/capitals.jsonl"
    assert list(spec.matrix_types) == ["mlp.in", "attn.q"]
    assert spec.layers.ranges[0].start == 22 and not spec.layers.ranges[0].HasField("stop")
    assert list(spec.layers.indices) == [3]
    assert spec.WhichOneof("rank") == "rho" and list(spec.rho.values) == [0.01, 0.5]
    assert spec.svd.method == sweep_pb2.SVD_METHOD_EXACT and spec.svd.seed == 7
    assert spec.split.HasField("validation_fraction") and spec.split.validation_fraction == 0.25
    assert dict(spec.labels) == {"team": "nlp"}
    import json
    assert build_spec(json.dumps(d)) == spec
    copy = build_spec(spec)
    assert copy == spec and copy is not spec


def test_build_spec_rejects_unknown_fields():
    with pytest.raises(ValueError, match="valuez"):
        build_spec({"rho": {"valuez": [1]}})
    with pytest.raises(ValueError, match="not a laser.v1.SweepSpec"):
        build_spec({"svd": {"method": "SVD_METHOD_FAST"}})


def make_result(index, plan, kind=sweep_pb2.RESULT_KIND_SINGLE):
    r = sweep_pb2.Result(job_id="sweep-0123456789abcdef", index=index, plan_index=plan, kind=kind)
    iv = r.intervention
    iv.matrix_type, iv.layer, iv.rho, iv.rate = "mlp.in", 2, 0.25, 7.5
    iv.rank_source, iv.rank, iv.max_rank = sweep_pb2.RANK_SOURCE_RATE, 16, 64
    iv.relative_error, iv.svd_method = 0.5, sweep_pb2.SVD_METHOD_PAPER
    v = r.metrics.validation
    v.examples, v.correct, v.accuracy, v.log_loss = 10, 3, 30.0, 2.5
    v.top_k_accuracy[10] = 90.0
    v.top_k_accuracy[1] = 30.0
    r.metrics.test.examples, r.metrics.test.accuracy = 40, 25.0
    r.validation_delta.accuracy, r.validation_delta.log_loss = 10.0, -0.5
    r.validation_delta.top_k_accuracy[1] = 5.0
    return r


def test_flatten_single():
    row = flatten_result(make_result(4, 9))
    assert list(row)[:len(COLUMNS)] == COLUMNS
    assert row == {
        "index": 4, "plan_index": 9, "kind": "single", "matrix_type": "mlp.in", "layer": 2,
        "expert": None, "rho": 0.25, "rate": 7.5, "rank_source": "rate", "rank": 16, "max_rank": 64,
        "relative_error": 0.5, "svd_method": "paper", "stacked_on": "", "kept": None,
        "validation.examples": 10, "validation.correct": 3, "validation.accuracy": 30.0,
        "validation.log_loss": 2.5, "test.examples": 40, "test.correct": 0,
        "test.accuracy": 25.0, "test.log_loss": 0.0, "validation_delta.accuracy": 10.0,
        "validation_delta.log_loss": -0.5, "test_delta.accuracy": 0.0,
        "test_delta.log_loss": 0.0, "validation.top_k.1": 30.0, "validation.top_k.10": 90.0,
        "validation_delta.top_k.1": 5.0,
    }
    assert list(row)[len(COLUMNS):] == ["validation.top_k.1", "validation.top_k.10",
                                        "validation_delta.top_k.1"]


def test_flatten_composition():
    r = make_result(5, 12, sweep_pb2.RESULT_KIND_COMPOSITION)
    r.kept = False
    r.stacked_on.add(matrix_type="attn.q", layer=3, rho=0.05)
    r.stacked_on.add(matrix_type="mlp.up", layer=0, rho=0.1)
    r.intervention.ClearField("rate")
    row = flatten_result(r)
    assert row["kind"] == "composition"
    assert row["kept"] is False
    assert row["rate"] is None
    assert row["stacked_on"] == "attn.q@3:0.05;mlp.up@0:0.1"


def test_flatten_expert():
    r = make_result(6, 13, sweep_pb2.RESULT_KIND_COMPOSITION)
    r.intervention.matrix_type = "moe.in"
    r.intervention.expert = 3
    r.stacked_on.add(matrix_type="moe.out", expert=0, layer=1, rho=0.5)
    row = flatten_result(r)
    assert row["matrix_type"] == "moe.in"
    assert row["expert"] == 3
    assert row["stacked_on"] == "moe.out[0]@1:0.5"


def test_cursor_accepts_each_index_once_in_order():
    c = ResultCursor(2)
    assert c.offer(make_result(0, 0)) == "duplicate"
    assert c.offer(make_result(2, 2)) == "accept"
    assert c.offer(make_result(2, 2)) == "duplicate"
    assert c.offer(make_result(4, 4)) == "gap"
    assert c.next_index == 3
    assert c.offer(make_result(3, 3)) == "accept"
    assert c.next_index == 4


def test_job_failed_message():
    job = sweep_pb2.Job(id="j1", state=sweep_pb2.JOB_STATE_FAILED)
    job.error.code, job.error.message = 13, "out of memory"
    assert str(laserd_client.JobFailed(job)) == "job j1 ended JOB_STATE_FAILED: out of memory"


def test_committed_stubs_match_the_proto(tmp_path):
    """Regenerates the stubs and compares them with the committed ones."""
    grpc_tools = pytest.importorskip("grpc_tools", reason="grpcio-tools is not installed")
    from importlib.metadata import version
    committed = HERE.parent / "laserd_client" / "v1"
    pinned = next(line.split("'")[1] for line in (committed / "sweep_pb2_grpc.py").read_text()
                  .splitlines() if line.startswith("GRPC_GENERATED_VERSION"))
    have = version("grpcio-tools")
    assert have == pinned, (f"grpcio-tools {have} is installed but the stubs were generated "
                            f"with {pinned} (scripts/setup.sh installs {pinned})")
    sys.path.insert(0, str(HERE.parent))
    import gen_stubs
    names = gen_stubs.generate(tmp_path)
    assert sorted(names) == sorted(p.name for p in committed.glob("*_pb2*"))
    for n in names:
        assert filecmp.cmp(tmp_path / n, committed / n, shallow=False), (
            f"{n} differs from what gen_stubs.py generates: run "
            f"python3 client/python/gen_stubs.py and commit the result")


def test_generation_spec_and_metrics():
    spec = build_spec({"dataset": {"path": "/data/capitals.jsonl"}, "task": "TASK_KIND_GENERATION",
                       "match": "MATCH_RULE_PREFIX",
                       "generation": {"maxNewTokens": 8, "stopStrings": ["\n"],
                                      "matchPrompt": True},
                       "rho": {"values": [0.5]}})
    assert spec.task == sweep_pb2.TASK_KIND_GENERATION
    assert spec.match == sweep_pb2.MATCH_RULE_PREFIX
    assert spec.generation.max_new_tokens == 8
    assert list(spec.generation.stop_strings) == ["\n"] and spec.generation.match_prompt
    r = make_result(1, 1)
    r.metrics.validation.f1 = 42.5
    r.metrics.validation.precision = 30.0
    r.metrics.validation.recall = 80.0
    r.metrics.validation.generated_tokens = 3.5
    row = flatten_result(r)
    assert row["validation.f1"] == 42.5 and row["validation.precision"] == 30.0
    assert row["validation.recall"] == 80.0 and row["validation.generated_tokens"] == 3.5
    assert "test.f1" not in row  # absent unless the metrics carry it
