"""The datasets laserd_client.paper_data writes are read by `laserd eval` as intended:
every committed expected file (client/python/tests/paper_data/*/expected*.jsonl) is
scored on the real SmolLM2-135M-Instruct GGUF (scripts/fetch_model.sh); laserd sees every
record, with the builder's record kind and label, in file order, and its default split
makes the first int(0.2 n) records validation (the paper's rule)."""
import json
import os
import pathlib
import subprocess

import pytest

from conftest import REPO, missing
from laserd_client import paper_data

EXPECTED = REPO / "client" / "python" / "tests" / "paper_data"
# expected file -> builder
FILES = {
    "counterfact/expected.jsonl": "counterfact",
    "hotpotqa/expected.jsonl": "hotpotqa",
    "fever/expected.jsonl": "fever",
    "bios/expected_gender.jsonl": "bios_gender",
    "bios/expected_profession.jsonl": "bios_profession",
    "truthfulqa/expected.jsonl": "truthfulqa",
    "bigbench_epistemic/expected.jsonl": "bigbench_epistemic",
    "bigbench_wikidata/expected.jsonl": "bigbench_wikidata",
}


@pytest.fixture(scope="module")
def smollm2() -> pathlib.Path:
    p = pathlib.Path(os.environ.get("LASERD_DATA_DIR", REPO / ".data")) / "models" / \
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not p.exists():
        missing(f"{p} is missing (scripts/fetch_model.sh fetches it)")
    return p


def test_every_builder_covered():
    assert sorted(FILES.values()) == sorted(paper_data.BUILDERS)
    assert sorted(str(p.relative_to(EXPECTED)) for p in EXPECTED.glob("*/expected*.jsonl")) == \
        sorted(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_laserd_eval_reads_paper_dataset(name, laserd_bin, smollm2, tmp_path):
    data = EXPECTED / name
    records = [json.loads(l) for l in data.read_text(encoding="utf-8").splitlines()]
    per = tmp_path / "per.jsonl"
    r = subprocess.run([str(laserd_bin), "eval", "--model", str(smollm2), "--data", str(data),
                        "--device", "cpu", "--json", "--no-progress", "--per-example", str(per)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    n = len(records)
    val = paper_data.validation_size(n)
    assert report["data"]["examples"] == n
    assert report["split"] == {"mode": "first", "val_fraction": 0.2, "validation": val,
                               "test": n - val}
    kind = paper_data.BUILDERS[FILES[name]].kind
    rows = [json.loads(l) for l in per.read_text(encoding="utf-8").splitlines()]
    assert [(x["index"], x["line"], x["kind"], x["split"]) for x in rows] == [
        (i, i + 1, kind, "validation" if i < val else "test") for i in range(n)]
    if kind == "choice":
        assert [x["label"] for x in rows] == [rec["label"] for rec in records]
        assert [len(x["choice_logprobs"]) for x in rows] == [len(rec["choices"]) for rec in records]
