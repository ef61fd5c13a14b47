"""laserd_client.paper_data: each builder turns a small hand-written input in the source's
real record format (paper_data/<source>/) into laserd JSONL, compared line by line with
the committed expected file; bad input fails with the file, line/record and field named.

The expected files follow the LASER paper's dataset code (docs/paper_datasets.md): every
line was checked by hand against its template, filters, de-duplication and order."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from laserd_client import paper_data  # noqa: E402
from laserd_client.paper_data import DataError, Row, build, read_rows  # noqa: E402

DATA = HERE / "paper_data"
REPO = HERE.parents[2]
LLAMA2_STYLE_TOKENIZER = REPO / "tests" / "fixtures" / "tokenizer" / "llama2_spm.json"

# builder -> (its --input arguments, expected file)
CASES = {
    "counterfact": (["counterfact/counterfact.json"], "counterfact/expected.jsonl"),
    "fever": (["paper_dev=fever/paper_dev.jsonl", "paper_test=fever/paper_test.jsonl"],
              "fever/expected.jsonl"),
    "bios_gender": (["bios/dev.jsonl"], "bios/expected_gender.jsonl"),
    "bios_profession": (["dev=bios/dev.jsonl"], "bios/expected_profession.jsonl"),
    "truthfulqa": (["truthfulqa/validation.jsonl"], "truthfulqa/expected.jsonl"),
    "bigbench_epistemic": (["validation=bigbench_epistemic/validation.jsonl",
                            "train=bigbench_epistemic/train.jsonl"],
                           "bigbench_epistemic/expected.jsonl"),
    "bigbench_wikidata": (["validation=bigbench_wikidata/validation.jsonl",
                           "train=bigbench_wikidata/train.jsonl"],
                          "bigbench_wikidata/expected.jsonl"),
}


def _input_arg(a: str) -> str:
    split, sep, path = a.partition("=")
    return f"{split}={DATA / path}" if sep else str(DATA / a)


def run_cli(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "laserd_client.paper_data", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def assert_same_lines(got_path: pathlib.Path, expected_path: pathlib.Path):
    got = got_path.read_text(encoding="utf-8").split("\n")
    want = expected_path.read_text(encoding="utf-8").split("\n")
    assert len(got) == len(want), f"{len(got) - 1} records, expected {len(want) - 1}"
    for no, (g, w) in enumerate(zip(got, want), 1):
        assert g == w, f"line {no}:\n got  {g}\n want {w}"


@pytest.mark.parametrize("builder", sorted(CASES))
def test_cli_output_matches_expected(builder, tmp_path):
    inputs, expected = CASES[builder]
    out = tmp_path / "out.jsonl"
    args = [builder, "--output", out]
    for a in inputs:
        args += ["--input", _input_arg(a)]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert_same_lines(out, DATA / expected)
    n = len(out.read_text(encoding="utf-8").splitlines())
    val = paper_data.validation_size(n)
    assert r.stderr.strip().endswith(
        f"wrote {n} {paper_data.BUILDERS[builder].kind} records to {out} "
        f"(laserd's default split: first {val} validation, {n - val} test)")


def hotpot_splits():
    return {s: read_rows(DATA / "hotpotqa" / f"{s}.jsonl") for s in ("train", "validation")}


def test_hotpotqa_rule_with_committed_token_counts(tmp_path):
    # token_counts.json: each answer's token count (BOS included) under the Llama-2-style
    # tokenizer fixture; test_hotpotqa_cli_with_tokenizer checks it against the tokenizer.
    counts = json.loads((DATA / "hotpotqa" / "token_counts.json").read_text(encoding="utf-8"))
    records = build("hotpotqa", hotpot_splits(), count_tokens=counts.__getitem__)
    out = tmp_path / "out.jsonl"
    paper_data.write_jsonl(records, out)
    assert_same_lines(out, DATA / "hotpotqa" / "expected.jsonl")
    # Train is cut at len(validation) = 3 rows before the filter: row 2 (21 tokens) is
    # dropped and still counts, so rows 4 and 5 (short answers) are never read.
    assert [r["answer"] for r in records] == [
        " Arthur's Magazine", " Delhi", " yes", " Greenwich Village, New York City"]
    # The limit is inclusive (15 kept, 16 dropped) and adjustable.
    looser = build("hotpotqa", hotpot_splits(), count_tokens=counts.__getitem__,
                   max_answer_tokens=16)
    assert [r["answer"] for r in looser][-1] == " Lower Manhattan, New York City"
    assert len(looser) == 5


def test_hotpotqa_cli_with_tokenizer(tmp_path):
    pytest.importorskip("tokenizers", reason="the `tokenizers` package is not installed; "
                        "the --tokenizer path is not checked")
    counts = json.loads((DATA / "hotpotqa" / "token_counts.json").read_text(encoding="utf-8"))
    count = paper_data.tokenizer_counter(LLAMA2_STYLE_TOKENIZER)
    assert {a: count(a) for a in counts} == counts
    out = tmp_path / "out.jsonl"
    r = run_cli("hotpotqa", "--input", f"train={DATA / 'hotpotqa' / 'train.jsonl'}",
                "--input", f"validation={DATA / 'hotpotqa' / 'validation.jsonl'}",
                "--tokenizer", LLAMA2_STYLE_TOKENIZER, "--output", out)
    assert r.returncode == 0, r.stderr
    assert_same_lines(out, DATA / "hotpotqa" / "expected.jsonl")


def test_tokenizer_flags_are_hotpotqa_only(tmp_path):
    r = run_cli("fever", "--input", f"paper_dev={DATA / 'fever' / 'paper_dev.jsonl'}",
                "--input", f"paper_test={DATA / 'fever' / 'paper_test.jsonl'}",
                "--max-answer-tokens", "20", "--output", tmp_path / "o.jsonl")
    assert r.returncode == 2
    assert r.stderr.rstrip().endswith(
        "error: --tokenizer and --max-answer-tokens are HotpotQA's answer-length filter; "
        "fever does not use them")


def test_hotpotqa_needs_a_tokenizer(tmp_path):
    r = run_cli("hotpotqa", "--input", f"train={DATA / 'hotpotqa' / 'train.jsonl'}",
                "--input", f"validation={DATA / 'hotpotqa' / 'validation.jsonl'}",
                "--output", tmp_path / "out.jsonl")
    assert r.returncode == 2
    assert "hotpotqa: the answer-length filter needs a tokenizer: pass --tokenizer" in r.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_expected_files_are_valid_laserd_records():
    # laserd's record rules (engine/eval/dataset.cc): a non-empty string prompt; a
    # completion has a non-empty string answer; a choice has >= 2 non-empty string
    # choices and an integer label in range, and no answer.
    files = sorted(DATA.glob("*/expected*.jsonl"))
    assert len(files) == 8
    for f in files:
        raw = f.read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw
        for no, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            r = json.loads(line)
            assert isinstance(r["prompt"], str) and r["prompt"], (f, no)
            if "choices" in r:
                assert "answer" not in r and set(r) == {"prompt", "choices", "label"}, (f, no)
                assert len(r["choices"]) >= 2 and all(isinstance(c, str) and c for c in r["choices"])
                assert type(r["label"]) is int and 0 <= r["label"] < len(r["choices"]), (f, no)
            else:
                assert set(r) == {"prompt", "answer"}, (f, no)
                assert isinstance(r["answer"], str) and r["answer"].startswith(" "), (f, no)


def test_fever_string_labels_read_as_the_paper_reads_the_integers(tmp_path):
    def with_names(name):
        rows = read_rows(DATA / "fever" / f"{name}.jsonl")
        return [Row(r.where, {**r.data, "label": ["REFUTES", "SUPPORTS"][r.data["label"]]})
                for r in rows]
    records = build("fever", {"paper_dev": with_names("paper_dev"),
                              "paper_test": with_names("paper_test")})
    out = tmp_path / "out.jsonl"
    paper_data.write_jsonl(records, out)
    assert_same_lines(out, DATA / "fever" / "expected.jsonl")


def test_validation_size_is_laserds_first_20_percent():
    assert [paper_data.validation_size(n) for n in (0, 1, 2, 4, 5, 9, 10, 412, 65757)] == [
        0, 0, 1, 1, 1, 1, 2, 82, 13151]


def test_list_names_every_builder():
    r = run_cli("--list")
    assert r.returncode == 0, r.stderr
    assert [l.split("\t")[:3] for l in r.stdout.splitlines()] == [
        ["counterfact", "completion", "counterfact"],
        ["hotpotqa", "completion", "train validation"],
        ["fever", "choice", "paper_dev paper_test"],
        ["bios_gender", "choice", "dev"],
        ["bios_profession", "choice", "dev"],
        ["truthfulqa", "choice", "validation"],
        ["bigbench_epistemic", "choice", "validation train"],
        ["bigbench_wikidata", "completion", "validation train"],
    ]


# --- bad input ----------------------------------------------------------------------------


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    return p


def cli_error(*args):
    r = run_cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    # The message is the last line (`datasets` may print progress lines before it).
    last = r.stderr.rstrip("\n").split("\n")[-1]
    assert last.startswith("paper_data: "), r.stderr
    return last[len("paper_data: "):]


def test_wrong_source_file_names_line_and_field(tmp_path):
    # FEVER rows given to the Bias in Bios builder.
    f = DATA / "fever" / "paper_dev.jsonl"
    assert cli_error("bios_gender", "--input", f, "--output", tmp_path / "o.jsonl") == (
        f"{f} line 1: missing field 'hard_text'")


def test_counterfact_errors(tmp_path):
    rec = json.loads((DATA / "counterfact" / "counterfact.json").read_text(encoding="utf-8"))
    p = tmp_path / "cf.json"

    bad = json.loads(json.dumps(rec))
    del bad[1]["requested_rewrite"]["target_true"]
    p.write_text(json.dumps(bad), encoding="utf-8")
    assert cli_error("counterfact", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} record 2: missing field 'requested_rewrite.target_true'")

    bad = json.loads(json.dumps(rec))
    bad[2]["paraphrase_prompts"].append("A third one")
    p.write_text(json.dumps(bad), encoding="utf-8")
    assert cli_error("counterfact", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} record 3: field 'paraphrase_prompts' has 3 entries, expected 2")

    bad = json.loads(json.dumps(rec))
    bad[0]["requested_rewrite"]["target_true"]["str"] = 7
    p.write_text(json.dumps(bad), encoding="utf-8")
    assert cli_error("counterfact", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} record 1: field 'requested_rewrite.target_true.str' must be a string, got an integer")

    bad = json.loads(json.dumps(rec))
    bad[0]["requested_rewrite"]["prompt"] = "The {0} of {1} is"
    p.write_text(json.dumps(bad), encoding="utf-8")
    assert cli_error("counterfact", "--input", p, "--output", tmp_path / "o.jsonl").startswith(
        f"{p} record 1: field 'requested_rewrite.prompt' is not a template with one '{{}}' for "
        "the subject")

    p.write_text(json.dumps({"case_id": 0}), encoding="utf-8")
    assert cli_error("counterfact", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} line 1: missing field 'requested_rewrite'")


def test_jsonl_shape_errors(tmp_path):
    good = '{"hard_text": "She paints.", "profession": 14, "gender": 1}'
    p = write(tmp_path, "dev.jsonl", [good, '["hard_text", "gender"]'])
    assert cli_error("bios_gender", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} line 2: expected a JSON object (one source record), got an array")
    p = write(tmp_path, "dev.jsonl", [good, "", '{"hard_text": "x", "gender": 1'])
    assert cli_error("bios_gender", "--input", p, "--output", tmp_path / "o.jsonl").startswith(
        f"{p} line 3: invalid JSON: ")
    p = write(tmp_path, "dev.jsonl", ['{"hard_text": "x", "profession": 14, "gender": "F"}'])
    assert cli_error("bios_gender", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} line 1: field 'gender' must be an integer, got a string")
    p = write(tmp_path, "dev.jsonl", [good, '{"hard_text": "x", "profession": 28, "gender": 0}'])
    assert cli_error("bios_profession", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} line 2: field 'profession' is 28, expected one of " +
        ", ".join(map(str, range(28))))
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"hard_text": "caf\xe9", "profession": 1, "gender": 0}\n')
    assert cli_error("bios_gender", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} line 1: invalid UTF-8 at byte 19 of the file")
    p = write(tmp_path, "dev.jsonl", [good, '{"hard_text": "x\\ud800", "profession": 1, "gender": 0}'])
    assert cli_error("bios_gender", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} line 2: field 'hard_text' is not valid Unicode (a lone surrogate)")
    p = write(tmp_path, "obj.json", ['[{"hard_text": "x", "gender": 0}, 3]'])
    assert cli_error("bios_gender", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} record 2: expected a JSON object (one source record), got an integer")


def test_fever_errors(tmp_path):
    dev = DATA / "fever" / "paper_dev.jsonl"
    row = '{"id": 1, "label": %s, "claim": "Grease had bad reviews.", "evidence_annotation_id": 1, ' \
          '"evidence_id": 1, "evidence_wiki_url": "Grease", "evidence_sentence_id": 0}'
    nei = write(tmp_path, "test.jsonl", [row % '"NOT ENOUGH INFO"'])
    assert cli_error("fever", "--input", f"paper_dev={dev}", "--input", f"paper_test={nei}",
                     "--output", tmp_path / "o.jsonl") == (
        f"{nei} line 1: field 'label' is \"NOT ENOUGH INFO\", expected 0, 1, \"REFUTES\" or "
        "\"SUPPORTS\" (the paper's FEVER has two classes)")
    two = write(tmp_path, "test.jsonl", [row % "2"])
    assert cli_error("fever", "--input", f"paper_dev={dev}", "--input", f"paper_test={two}",
                     "--output", tmp_path / "o.jsonl") == (
        f"{two} line 1: field 'label' is 2, expected one of 0, 1")
    # A claim in both splits (the paper asserts they are disjoint).
    test = DATA / "fever" / "paper_test.jsonl"
    shared = write(tmp_path, "dev.jsonl", dev.read_text().splitlines() + [row % "1"])
    assert cli_error("fever", "--input", f"paper_dev={shared}", "--input", f"paper_test={test}",
                     "--output", tmp_path / "o.jsonl") == (
        f"fever: claim \"Grease had bad reviews.\" is in paper_dev ({shared} line 8) and in "
        f"paper_test ({test} line 1); the paper requires disjoint splits (1 shared claim(s))")
    # Both splits are needed; SPLIT= names one of them.
    assert cli_error("fever", "--input", f"paper_dev={dev}", "--output", tmp_path / "o.jsonl") == (
        "fever: missing --input for split(s) paper_test (give paper_dev=FILE paper_test=FILE)")
    assert cli_error("fever", "--input", f"dev={dev}", "--output", tmp_path / "o.jsonl") == (
        f"fever: --input takes SPLIT=FILE with SPLIT one of paper_dev, paper_test; got 'dev={dev}'")


def test_truthfulqa_errors(tmp_path):
    q = '{"question": "Q?", "mc2_targets": {"choices": ["A", "B"], "labels": %s}}'
    for labels, msg in [
        ("[1]", "field 'mc2_targets.labels' has 1 entries but 'mc2_targets.choices' has 2"),
        ("[0, 0]", "field 'mc2_targets.labels' has no correct answer (1)"),
        ("[1, 2]", "field 'mc2_targets.labels[1]' is 2, expected 0 or 1"),
        ('"10"', "field 'mc2_targets.labels' must be an array of integers, got a string"),
    ]:
        p = write(tmp_path, "v.jsonl", [q % "[1, 0]", q % labels])
        assert cli_error("truthfulqa", "--input", p, "--output", tmp_path / "o.jsonl") == (
            f"{p} line 2: {msg}")
    p = write(tmp_path, "v.jsonl", ['{"question": "Q?", "mc2_targets": ["A"]}'])
    assert cli_error("truthfulqa", "--input", p, "--output", tmp_path / "o.jsonl") == (
        f"{p} line 1: field 'mc2_targets' must be an object, got an array")


def test_bigbench_errors(tmp_path):
    ok = '{"inputs": "P\\nRelation:", "targets": ["entailment"]}'
    bad = write(tmp_path, "train.jsonl", [ok, '{"inputs": "P\\nRelation:", "targets": ["contradiction"]}'])
    val = write(tmp_path, "val.jsonl", [ok])
    assert cli_error("bigbench_epistemic", "--input", f"validation={val}", "--input",
                     f"train={bad}", "--output", tmp_path / "o.jsonl") == (
        f"{bad} line 2: field 'targets' is [\"contradiction\"], expected one of "
        "[\"entailment\"] or [\"non-entailment\"]")
    bad = write(tmp_path, "train.jsonl", ['{"inputs": "The capital of Chad is", "targets": "N\'Djamena"}'])
    assert cli_error("bigbench_wikidata", "--input", f"validation={val}", "--input",
                     f"train={bad}", "--output", tmp_path / "o.jsonl") == (
        f"{bad} line 1: field 'targets' must be an array of strings, got a string")


def test_hf_dataset_needs_datasets_or_a_name(tmp_path):
    assert cli_error("counterfact", "--hf-dataset", "--output", tmp_path / "o.jsonl") == (
        "counterfact: the paper reads a file, not a Hugging Face dataset; pass --input FILE or "
        "--hf-dataset NAME")
    try:
        import datasets  # noqa: F401
    except ImportError:
        assert cli_error("fever", "--hf-dataset", "--output", tmp_path / "o.jsonl") == (
            "--hf-dataset needs the `datasets` package (pip install datasets); or pass the rows "
            "as files with --input")
    else:
        pytest.skip("`datasets` is installed: the missing-package message is not reachable")


# --- --hf-dataset, with `datasets` on a local directory (no network) -------------------------


@pytest.fixture
def hf_env(monkeypatch, tmp_path):
    pytest.importorskip("datasets", reason="the optional `datasets` package is not installed; "
                        "the --hf-dataset path is not checked")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def local_hf_dataset(tmp_path, files):
    """A directory `datasets.load_dataset` reads offline; its splits are named by the
    files (train, validation, test)."""
    d = tmp_path / "hf"
    d.mkdir()
    for split, src in files.items():
        (d / f"{split}.jsonl").write_bytes((DATA / src).read_bytes())
    return d


def test_hf_dataset_cli_with_split_names(hf_env, tmp_path):
    d = local_hf_dataset(tmp_path, {"validation": "fever/paper_dev.jsonl",
                                    "test": "fever/paper_test.jsonl"})
    out = tmp_path / "out.jsonl"
    r = run_cli("fever", "--hf-dataset", d, "--hf-split", "paper_dev=validation",
                "--hf-split", "paper_test=test", "--output", out)
    assert r.returncode == 0, r.stderr
    assert_same_lines(out, DATA / "fever" / "expected.jsonl")
    # Nested fields (mc2_targets) come through `datasets` as the files have them.
    (tmp_path / "t").mkdir()
    d2 = local_hf_dataset(tmp_path / "t", {"validation": "truthfulqa/validation.jsonl"})
    r = run_cli("truthfulqa", "--hf-dataset", d2, "--output", out)
    assert r.returncode == 0, r.stderr
    assert_same_lines(out, DATA / "truthfulqa" / "expected.jsonl")


def test_hf_dataset_hotpotqa_reads_only_the_train_prefix(hf_env, tmp_path):
    d = local_hf_dataset(tmp_path, {"train": "hotpotqa/train.jsonl",
                                    "validation": "hotpotqa/validation.jsonl"})
    splits = paper_data.load_hf_splits("hotpotqa", str(d), None)
    assert [len(splits["train"]), len(splits["validation"])] == [3, 3]
    assert splits["train"][2].where == f"{d}[train[:3]] row 2"
    assert set(splits["train"][0].data) == {"question", "answer"}
    counts = json.loads((DATA / "hotpotqa" / "token_counts.json").read_text(encoding="utf-8"))
    out = tmp_path / "out.jsonl"
    paper_data.write_jsonl(build("hotpotqa", splits, count_tokens=counts.__getitem__), out)
    assert_same_lines(out, DATA / "hotpotqa" / "expected.jsonl")


def test_hf_dataset_errors(hf_env, tmp_path):
    d = local_hf_dataset(tmp_path, {"validation": "fever/paper_dev.jsonl"})
    assert cli_error("bios_gender", "--hf-dataset", d, "--hf-split", "dev=validation",
                     "--output", tmp_path / "o.jsonl") == (
        f"{d}[validation]: missing field(s) 'hard_text', 'gender' (its columns: id, label, "
        "claim, evidence_annotation_id, evidence_id, evidence_wiki_url, evidence_sentence_id)")
    msg = cli_error("bios_gender", "--hf-dataset", d, "--output", tmp_path / "o.jsonl")
    assert msg.startswith(f"{d}[dev]: cannot load: "), msg
    assert cli_error("bios_gender", "--hf-dataset", d, "--hf-split", "validation=dev",
                     "--output", tmp_path / "o.jsonl") == (
        "--hf-split takes SPLIT=HF_SPLIT with SPLIT one of dev; got 'validation=dev'")


def test_packaged_with_the_client():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    project = tomllib.loads((HERE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert "laserd_client" in project["tool"]["setuptools"]["packages"]
    assert pathlib.Path(paper_data.__file__).parent == HERE.parent / "laserd_client"
    script = project["project"]["scripts"]["laserd-paper-data"]
    assert script == "laserd_client.paper_data:main" and callable(paper_data.main)
    assert set(project["project"]["optional-dependencies"]["paper-data"]) == {"datasets",
                                                                              "tokenizers"}
