"""Scoring by generation from the command line (docs/cli.md, docs/sweep.md): `laserd eval
--match` on the tiny Llama fixture, its usage errors naming the flag's field, and a
generation sweep through `laserd serve` refusing a choice dataset with the field named."""
import json
import subprocess

import grpc
import pytest

from conftest import require_subcommands


def _completion_data(path):
    rows = [{"prompt": f"The capital of {c} is", "answer": f" {a}"}
            for c, a in [("France", "Paris"), ("Peru", "Lima"), ("Italy", "Rome"),
                         ("Norway", "Oslo"), ("Japan", "Tokyo")]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_match_contains_writes_generated_text(laserd_bin, tiny_model, tmp_path):
    require_subcommands(laserd_bin, "eval")
    data = _completion_data(tmp_path / "c.jsonl")
    per = tmp_path / "per.jsonl"
    out = subprocess.run([laserd_bin, "eval", "--model", tiny_model, "--data", data,
                          "--device", "cpu", "--match", "contains", "--max-new-tokens", "3",
                          "--json", "--no-progress", "--per-example", per],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["match"] == {"rule": "contains", "max_new_tokens": 3, "stop_strings": [],
                               "match_prompt": False}
    assert report["metrics"]["all"]["generated"] == 5
    rows = [json.loads(line) for line in per.read_text().splitlines()]
    assert len(rows) == 5
    for r in rows:
        assert 1 <= len(r["generated_ids"]) <= 3
        assert r["stop_reason"] in ("eos", "length")
        assert isinstance(r["generated_text"], str)
        assert r["correct"] == (r["generated_text"].strip().lower().find(
            {1: "paris", 2: "lima", 3: "rome", 4: "oslo", 5: "tokyo"}[r["line"]]) >= 0)


@pytest.mark.parametrize("flags, message", [
    (["--match", "contains", "--max-new-tokens", "2000"],
     "max_new_tokens: 2000 is not in [1, 1024]"),
    (["--match", "contains", "--max-new-tokens", "0"], "max_new_tokens: 0 is not in [1, 1024]"),
    (["--match", "fuzzy"], "match rule 'fuzzy' is not one of"),
])
def test_eval_usage_errors_name_the_field(laserd_bin, tiny_model, tmp_path, flags, message):
    require_subcommands(laserd_bin, "eval")
    data = _completion_data(tmp_path / "c.jsonl")
    out = subprocess.run([laserd_bin, "eval", "--model", tiny_model, "--data", data,
                          "--device", "cpu", "--no-progress", *flags],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr


def test_server_refuses_generation_on_a_choice_dataset(server, tiny_data):
    from laserd_client import Client
    with Client(server) as c:
        spec = {"dataset": {"path": str(tiny_data)}, "task": "TASK_KIND_GENERATION",
                "rho": {"values": [0.5]}}
        with pytest.raises(grpc.RpcError) as e:
            c.validate(spec)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "spec.task:" in e.value.details()
        assert "is a choice record, but the task is generation" in e.value.details()
        spec["generation"] = {"max_new_tokens": 5000}
        with pytest.raises(grpc.RpcError) as e:
            c.validate(spec)
        assert e.value.details() == "spec.generation.max_new_tokens: 5000 is not in [1, 1024]"


def test_generation_sweep_keeps_each_examples_generated_text(laserd_bin, tiny_model, tmp_path):
    """A generation sweep with keep_example_outputs writes every example's compared
    continuation; the baseline's equals `laserd eval --per-example`'s on the same model."""
    require_subcommands(laserd_bin, "eval", "sweep")
    data = _completion_data(tmp_path / "c.jsonl")
    per = tmp_path / "per.jsonl"
    out = subprocess.run([laserd_bin, "eval", "--model", tiny_model, "--data", data,
                          "--device", "cpu", "--match", "contains", "--max-new-tokens", "3",
                          "--json", "--no-progress", "--per-example", per],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    want = [json.loads(line)["generated_text"] for line in per.read_text().splitlines()]
    spec = {"dataset": {"path": str(data)}, "task": "TASK_KIND_GENERATION",
            "match": "MATCH_RULE_CONTAINS", "generation": {"max_new_tokens": 3},
            "matrix_types": ["mlp.out"], "layers": {"indices": [0]},
            "rho": {"values": [0.5]}, "keep_example_outputs": True}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    res = tmp_path / "gen.jsonl"
    out = subprocess.run([laserd_bin, "sweep", "--model", tiny_model, "--spec", spec_file,
                          "--out", res, "--device", "cpu", "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    from google.protobuf import json_format
    from laserd_client.v1 import sweep_pb2
    outputs = [json_format.Parse(line, sweep_pb2.ExampleOutputs()) for line in
               (tmp_path / "gen.examples.jsonl").read_text().splitlines()]
    assert [o.result_index for o in outputs] == [-1, 0]
    assert [e.generated_text for e in outputs[0].examples] == want
    assert any(e.generated_text for e in outputs[0].examples)
    assert len(outputs[1].examples) == 5
