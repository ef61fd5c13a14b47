"""Builds laserd datasets (JSONL) from the sources the LASER paper evaluates on.

    python -m laserd_client.paper_data BUILDER --input [SPLIT=]FILE ... --output out.jsonl
    python -m laserd_client.paper_data BUILDER --hf-dataset [NAME] --output out.jsonl
    python -m laserd_client.paper_data --list

Each builder reads the source in its own record format (the rows of the Hugging Face
dataset the paper loads, as `datasets` yields them or as JSONL / a JSON array written from
them; for CounterFact the ROME `counterfact.json` file) and writes one laserd record per
example with the paper's prompt template, filters, de-duplication and order. The order
matters: laserd's default split takes the first 20% of the file as validation, which is
how the paper selects interventions. docs/paper_datasets.md describes every builder and
the scoring mode the paper used per model.

`datasets` (for --hf-dataset) and `tokenizers` (for HotpotQA's answer-length filter) are
imported only when used.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "BUILDERS",
    "Builder",
    "DataError",
    "Row",
    "build",
    "read_rows",
    "load_hf_rows",
    "load_hf_splits",
    "tokenizer_counter",
    "write_jsonl",
    "validation_size",
    "main",
]


class DataError(ValueError):
    """Input that does not have the source's shape. The message names the file and line
    (or record), the field and what was expected."""


@dataclass(frozen=True)
class Row:
    """One source record and where it came from (for messages), e.g.
    `dev.jsonl line 3`, `counterfact.json record 2`, `LabHC/bias_in_bios[dev] row 17`."""
    where: str
    data: Any


# ---------------------------------------------------------------------------------------
# Reading input


def read_rows(path: str | pathlib.Path) -> List[Row]:
    """Rows of a JSONL file (one JSON object per line; blank lines skipped) or of a file
    holding one JSON array of objects (the first non-blank character is `[`). Lines are
    numbered from 1, array records from 1."""
    p = pathlib.Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {p}: {e.strerror or e}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{p} line {line}: invalid UTF-8 at byte {e.start + 1} of the file") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{p} line {e.lineno}: invalid JSON: {e.msg}") from None
        if not isinstance(records, list):
            raise DataError(f"{p}: expected a JSON array of records")
        return [Row(f"{p} record {i}", r) for i, r in enumerate(records, 1)]
    rows = []
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append(Row(f"{p} line {no}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(f"{p} line {no}: invalid JSON: {e.msg} (column {e.colno}); expected "
                            "one JSON object per line or one JSON array") from None
    return rows


def load_hf_rows(name: str, config: Optional[str], split: str,
                 fields: Optional[Sequence[str]] = None) -> List[Row]:
    """Rows of a Hugging Face dataset split, through `datasets.load_dataset` (`split` may
    be a slice such as "train[:7405]"). With `fields`, only those columns are read; a
    missing one is an error naming it."""
    try:
        from datasets import load_dataset  # optional dependency
    except ImportError:
        raise DataError("--hf-dataset needs the `datasets` package (pip install datasets); "
                        "or pass the rows as files with --input") from None
    label = f"{name}" + (f"/{config}" if config else "") + f"[{split}]"
    try:
        ds = load_dataset(name, config, split=split) if config else load_dataset(name, split=split)
    except Exception as e:  # datasets raises many kinds (not found, offline, bad split)
        raise DataError(f"{label}: cannot load: {type(e).__name__}: {e}") from None
    if fields:
        missing = [f for f in fields if f not in ds.column_names]
        if missing:
            raise DataError(f"{label}: missing field(s) {', '.join(map(repr, missing))} (its "
                            f"columns: {', '.join(ds.column_names)})")
        ds = ds.select_columns(list(fields))
    return [Row(f"{label} row {i}", dict(r)) for i, r in enumerate(ds)]


def load_hf_splits(builder: str | Builder, name: str, config: Optional[str],
                   hf_splits: Optional[Mapping[str, str]] = None) -> Dict[str, List[Row]]:
    """Every input split of `builder` from a Hugging Face dataset (`hf_splits` maps a
    builder split to another split name; CounterFact's one split reads "train"). For
    HotpotQA only the first len(validation) train rows are loaded."""
    b = BUILDERS[builder] if isinstance(builder, str) else builder
    names = {s: (s if s != "counterfact" else "train") for s in b.splits}
    names.update(hf_splits or {})
    order = list(b.splits)
    if b.prefix_of:      # the split whose length bounds the other is read first
        order.sort(key=lambda s: s != b.prefix_of[1])
    splits: Dict[str, List[Row]] = {}
    for s in order:
        hs = names[s]
        if b.prefix_of and s == b.prefix_of[0]:
            hs = f"{hs}[:{len(splits[b.prefix_of[1]])}]"
        splits[s] = load_hf_rows(name, config, hs, b.fields)
    return {s: splits[s] for s in b.splits}


def tokenizer_counter(path: str | pathlib.Path) -> Callable[[str], int]:
    """Token count of a text under a `tokenizer.json` (the `tokenizers` package), special
    tokens included: what `len(tokenizer(text).input_ids)` gives in transformers (for the
    Llama-2 tokenizer: BOS + the text's pieces)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise DataError("--tokenizer needs the `tokenizers` package (pip install tokenizers)") from None
    tok = Tokenizer.from_file(str(path))
    return lambda text: len(tok.encode(text).ids)


# ---------------------------------------------------------------------------------------
# Field access with precise errors


def _obj(row: Row) -> Mapping[str, Any]:
    if not isinstance(row.data, Mapping):
        raise DataError(f"{row.where}: expected a JSON object (one source record), got "
                        f"{_type(row.data)}")
    return row.data


def _type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "an array"
    if isinstance(v, Mapping):
        return "an object"
    return type(v).__name__


def _get(row: Row, path: str) -> Any:
    """The value at a dotted field path ("requested_rewrite.target_true.str")."""
    cur: Any = _obj(row)
    done = []
    for key in path.split("."):
        if not isinstance(cur, Mapping):
            raise DataError(f"{row.where}: field '{'.'.join(done)}' must be an object, got "
                            f"{_type(cur)}")
        if key not in cur:
            raise DataError(f"{row.where}: missing field '{'.'.join(done + [key])}'")
        cur = cur[key]
        done.append(key)
    return cur


def _check_text(row: Row, field: str, v: str) -> str:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{row.where}: field '{field}' is not valid Unicode (a lone surrogate)") from None
    return v


def _str(row: Row, path: str) -> str:
    v = _get(row, path)
    if not isinstance(v, str):
        raise DataError(f"{row.where}: field '{path}' must be a string, got {_type(v)}")
    return _check_text(row, path, v)


def _int(row: Row, path: str, allowed: Sequence[int]) -> int:
    v = _get(row, path)
    if isinstance(v, bool) or not isinstance(v, int):
        raise DataError(f"{row.where}: field '{path}' must be an integer, got {_type(v)}")
    if v not in allowed:
        raise DataError(f"{row.where}: field '{path}' is {v}, expected one of "
                        f"{', '.join(map(str, allowed))}")
    return v


def _str_list(row: Row, path: str) -> List[str]:
    v = _get(row, path)
    if not isinstance(v, (list, tuple)):
        raise DataError(f"{row.where}: field '{path}' must be an array of strings, got {_type(v)}")
    for i, s in enumerate(v):
        if not isinstance(s, str):
            raise DataError(f"{row.where}: field '{path}[{i}]' must be a string, got {_type(s)}")
        _check_text(row, f"{path}[{i}]", s)
    return list(v)


# ---------------------------------------------------------------------------------------
# Builders


def _completion(prompt: str, answer: str) -> Dict[str, Any]:
    return {"prompt": prompt, "answer": answer}


def _choice(prompt: str, choices: Sequence[str], label: int) -> Dict[str, Any]:
    return {"prompt": prompt, "choices": list(choices), "label": label}


def _one_split(splits: Mapping[str, List[Row]], name: str) -> List[Row]:
    return splits[name]


def _counterfact(splits, **_) -> List[Dict[str, Any]]:
    # scripts/get_counterfact.py of the paper: per ROME record, the rewrite prompt filled
    # with the subject, then both paraphrase prompts, all with the true target behind a
    # space. No filter, no de-duplication, file order.
    out = []
    for row in _one_split(splits, "counterfact"):
        template = _str(row, "requested_rewrite.prompt")
        subject = _str(row, "requested_rewrite.subject")
        try:
            question = template.format(subject)
        except (IndexError, KeyError, ValueError) as e:
            raise DataError(f"{row.where}: field 'requested_rewrite.prompt' is not a template "
                            f"with one '{{}}' for the subject ({e!r})") from None
        paraphrases = _str_list(row, "paraphrase_prompts")
        if len(paraphrases) != 2:
            raise DataError(f"{row.where}: field 'paraphrase_prompts' has {len(paraphrases)} "
                            "entries, expected 2")
        answer = " " + _str(row, "requested_rewrite.target_true.str")
        for prompt in [question] + paraphrases:
            out.append(_completion(prompt, answer))
    return out


def _hotpot_prompt(question: str) -> str:
    if not question.endswith("?") and not question.endswith("."):
        return f"{question}? The answer is"
    return f"{question} The answer is"


def _hotpotqa(splits, count_tokens: Optional[Callable[[str], int]] = None,
              max_answer_tokens: int = 15, **_) -> List[Dict[str, Any]]:
    # dataset_utils/hotpot.py: the first len(validation) rows of train (counted before the
    # filter), then all of validation; question and answer stripped; kept when the answer
    # has at most 15 tokens under the Llama-2 tokenizer (BOS included).
    if count_tokens is None:
        raise DataError("hotpotqa: the answer-length filter needs a tokenizer: pass --tokenizer "
                        "(the Llama-2 tokenizer.json; the paper uses it for every model)")
    validation = splits["validation"]
    train = splits["train"][:len(validation)]
    out = []
    for part in (train, validation):
        for row in part:
            question = _str(row, "question").strip()
            answer = _str(row, "answer").strip()
            if count_tokens(answer) <= max_answer_tokens:
                out.append(_completion(_hotpot_prompt(question), " " + answer))
    return out


FEVER_CHOICES = (" false", " true")
_FEVER_LABELS = {"REFUTES": 0, "SUPPORTS": 1}


def _fever_label(row: Row) -> int:
    v = _get(row, "label")
    if isinstance(v, str):
        if v not in _FEVER_LABELS:
            raise DataError(f"{row.where}: field 'label' is {json.dumps(v)}, expected 0, 1, "
                            "\"REFUTES\" or \"SUPPORTS\" (the paper's FEVER has two classes)")
        return _FEVER_LABELS[v]
    return _int(row, "label", (0, 1))


def _fever_prompt(claim: str) -> str:
    c = claim.strip()
    if c.endswith(".") or c.endswith("?"):
        return "Consider the following claim: " + c + " Is this claim true or false. The claim is"
    return "Consider the following claim: " + c + ". Is this claim true or false. The claim is"


def _fever(splits, **_) -> List[Dict[str, Any]]:
    # dataset_utils/fever.py: paper_dev then paper_test; within each split a claim seen
    # with more than one label is dropped, repeated claims with one label are kept once,
    # at their first occurrence; the two splits share no claim.
    parts: List[Dict[str, Tuple[set, str]]] = []
    for split in ("paper_dev", "paper_test"):
        claims: Dict[str, Tuple[set, str]] = {}   # claim -> (labels, first row's place)
        for row in splits[split]:
            claim = _str(row, "claim")
            label = _fever_label(row)
            claims.setdefault(claim, (set(), row.where))[0].add(label)
        parts.append(claims)
    dev, test = parts
    shared = [c for c in dev if c in test]
    if shared:
        c = shared[0]
        raise DataError(f"fever: claim {json.dumps(c, ensure_ascii=False)} is in paper_dev "
                        f"({dev[c][1]}) and in paper_test ({test[c][1]}); the paper requires "
                        f"disjoint splits ({len(shared)} shared claim(s))")
    out = []
    for claims in parts:
        for claim, (labels, _) in claims.items():
            if len(labels) == 1:
                out.append(_choice(_fever_prompt(claim), FEVER_CHOICES, next(iter(labels))))
    return out


def _bios_prompt(text: str, question: str) -> str:
    t = text.strip()
    if not (t.endswith(".") or t.endswith("?")):
        t += "."
    return "Consider the following text: " + t + question


GENDER_CHOICES = (" male", " female")


def _bios_gender(splits, **_) -> List[Dict[str, Any]]:
    # dataset_utils/bias_in_bios.py (BiasBiosGender) and intervention_*_bios.py: the whole
    # dev split in order; gender 0 = male, 1 = female.
    out = []
    for row in splits["dev"]:
        text = _str(row, "hard_text")
        gender = _int(row, "gender", (0, 1))
        out.append(_choice(_bios_prompt(text, " Is the person in this text a male or female? "
                                              "The gender of this person is"),
                           GENDER_CHOICES, gender))
    return out


# The 28 professions of Bias in Bios by class id, and the eight the paper keeps (the
# single-token ones), in the paper's order: the label is the index in PAPER_PROFESSIONS.
BIOS_PROFESSIONS = (
    "accountant", "architect", "attorney", "chiropractor", "comedian", "composer", "dentist",
    "dietitian", "dj", "filmmaker", "interior designer", "journalist", "model", "nurse",
    "painter", "paralegal", "pastor", "personal trainer", "photographer", "physician", "poet",
    "professor", "psychologist", "rapper", "software engineer", "surgeon", "teacher",
    "yoga teacher")
PAPER_PROFESSIONS = ("journalist", "poet", "composer", "model", "teacher", "architect",
                     "painter", "professor")
PROFESSION_CHOICES = tuple(" " + p for p in PAPER_PROFESSIONS)


def _bios_profession(splits, **_) -> List[Dict[str, Any]]:
    # BiasBiosOccupation: the dev rows whose profession is one of the eight, in order.
    out = []
    for row in splits["dev"]:
        text = _str(row, "hard_text")
        name = BIOS_PROFESSIONS[_int(row, "profession", range(len(BIOS_PROFESSIONS)))]
        if name not in PAPER_PROFESSIONS:
            continue
        out.append(_choice(_bios_prompt(text, " What is the profession of the person in this "
                                              "text? The profession of this person is"),
                           PROFESSION_CHOICES, PAPER_PROFESSIONS.index(name)))
    return out


TRUE_FALSE_CHOICES = (" false", " true")


def _truthfulqa(splits, **_) -> List[Dict[str, Any]]:
    # dataset_utils/truthfulqa.py: per question, each mc2 answer in order becomes one
    # statement labelled 1 (true) or 0 (false). The suffix follows the period directly.
    out = []
    for row in splits["validation"]:
        question = _str(row, "question")
        answers = _str_list(row, "mc2_targets.choices")
        labels = _get(row, "mc2_targets.labels")
        if not isinstance(labels, (list, tuple)):
            raise DataError(f"{row.where}: field 'mc2_targets.labels' must be an array of "
                            f"integers, got {_type(labels)}")
        if len(labels) != len(answers):
            raise DataError(f"{row.where}: field 'mc2_targets.labels' has {len(labels)} entries "
                            f"but 'mc2_targets.choices' has {len(answers)}")
        for i, v in enumerate(labels):
            if isinstance(v, bool) or v not in (0, 1):
                raise DataError(f"{row.where}: field 'mc2_targets.labels[{i}]' is "
                                f"{json.dumps(v)}, expected 0 or 1")
        if 1 not in labels:
            raise DataError(f"{row.where}: field 'mc2_targets.labels' has no correct answer (1)")
        for answer, label in zip(answers, labels):
            prompt = question + " " + answer
            if not prompt.endswith("."):
                prompt += "."
            prompt += "Is this statement true or false? This statement is"
            out.append(_choice(prompt, TRUE_FALSE_CHOICES, label))
    return out


EPISTEMIC_CHOICES = ("entailment", "non-entailment")


def _bigbench_targets(row: Row) -> List[str]:
    return _str_list(row, "targets")


def _bigbench_epistemic(splits, **_) -> List[Dict[str, Any]]:
    # dataset_utils/bigbench.py, "epistemic_reasoning": validation then train; one target,
    # one of the two choices; the model compares " entailment" and " non-entailment"
    # after the input.
    out = []
    for split in ("validation", "train"):
        for row in splits[split]:
            prompt = _str(row, "inputs")
            targets = _bigbench_targets(row)
            if len(targets) != 1 or targets[0] not in EPISTEMIC_CHOICES:
                raise DataError(f"{row.where}: field 'targets' is {json.dumps(targets)}, expected "
                                "one of [\"entailment\"] or [\"non-entailment\"]")
            out.append(_choice(prompt, [" " + c for c in EPISTEMIC_CHOICES],
                               EPISTEMIC_CHOICES.index(targets[0])))
    return out


def _bigbench_wikidata(splits, **_) -> List[Dict[str, Any]]:
    # "qa_wikidata": validation then train; rows with exactly one target; the input and
    # the target stripped, the target behind a space.
    out = []
    for split in ("validation", "train"):
        for row in splits[split]:
            prompt = _str(row, "inputs")
            targets = _bigbench_targets(row)
            if len(targets) == 1:
                out.append(_completion(prompt.strip(), " " + targets[0].strip()))
    return out


@dataclass(frozen=True)
class Builder:
    name: str
    splits: Tuple[str, ...]          # input splits, in the order the paper reads them
    hf_name: Optional[str]           # the Hugging Face dataset the paper loads (None: a file)
    hf_config: Optional[str]
    kind: str                        # the laserd record kind written: completion | choice
    fn: Callable[..., List[Dict[str, Any]]]
    summary: str
    fields: Tuple[str, ...] = ()     # the top-level fields read (HF columns to load)
    # (split, other): only the first len(other) rows of split are read (HotpotQA's train)
    prefix_of: Optional[Tuple[str, str]] = None


BUILDERS: Dict[str, Builder] = {b.name: b for b in [
    Builder("counterfact", ("counterfact",), None, None, "completion", _counterfact,
            "CounterFact (ROME counterfact.json): prompt + 2 paraphrases per record",
            ("requested_rewrite", "paraphrase_prompts")),
    Builder("hotpotqa", ("train", "validation"), "hotpot_qa", "fullwiki", "completion", _hotpotqa,
            "HotpotQA: first len(validation) train rows, then validation; answers <= 15 tokens",
            ("question", "answer"), ("train", "validation")),
    Builder("fever", ("paper_dev", "paper_test"), "EleutherAI/fever", "v1.0", "choice", _fever,
            "FEVER: paper_dev then paper_test, conflicting claims dropped, repeats merged",
            ("claim", "label")),
    Builder("bios_gender", ("dev",), "LabHC/bias_in_bios", None, "choice", _bios_gender,
            "Bias in Bios, gender: the dev split", ("hard_text", "gender")),
    Builder("bios_profession", ("dev",), "LabHC/bias_in_bios", None, "choice", _bios_profession,
            "Bias in Bios, profession: dev rows of the eight single-token professions",
            ("hard_text", "profession")),
    Builder("truthfulqa", ("validation",), "truthful_qa", "multiple_choice", "choice", _truthfulqa,
            "TruthfulQA: one true/false statement per mc2 answer", ("question", "mc2_targets")),
    Builder("bigbench_epistemic", ("validation", "train"), "tasksource/bigbench",
            "epistemic_reasoning", "choice", _bigbench_epistemic,
            "BigBench epistemic_reasoning: validation then train", ("inputs", "targets")),
    Builder("bigbench_wikidata", ("validation", "train"), "tasksource/bigbench", "qa_wikidata",
            "completion", _bigbench_wikidata,
            "BigBench qa_wikidata: validation then train, single-target rows", ("inputs", "targets")),
]}


def build(builder: str | Builder, splits: Mapping[str, Iterable[Row]], *,
          count_tokens: Optional[Callable[[str], int]] = None,
          max_answer_tokens: int = 15) -> List[Dict[str, Any]]:
    """The laserd records of `builder` from its input splits (every name in
    `builder.splits`), in the paper's order. `count_tokens` is HotpotQA's answer-length
    counter (see tokenizer_counter)."""
    b = BUILDERS[builder] if isinstance(builder, str) else builder
    missing = [s for s in b.splits if s not in splits]
    if missing:
        raise DataError(f"{b.name}: missing input split(s) {', '.join(missing)} (needs "
                        f"{', '.join(b.splits)})")
    extra = [s for s in splits if s not in b.splits]
    if extra:
        raise DataError(f"{b.name}: unknown split(s) {', '.join(extra)} (its splits: "
                        f"{', '.join(b.splits)})")
    rows = {s: list(splits[s]) for s in b.splits}
    records = b.fn(rows, count_tokens=count_tokens, max_answer_tokens=max_answer_tokens)
    for i, r in enumerate(records, 1):
        if not r["prompt"] or ("answer" in r and not r["answer"]):
            raise DataError(f"{b.name}: output record {i} has an empty prompt or answer: "
                            f"{json.dumps(r, ensure_ascii=False)}")
    return records


def validation_size(n: int, fraction: float = 0.2) -> int:
    """How many leading records laserd's default split makes validation (the paper's
    int(0.2 * n), at least 1 and at most n - 1 when n >= 2; docs/metrics.md)."""
    import math
    if n < 2:
        return 0
    return min(max(int(math.floor(fraction * n + 1e-9)), 1), n - 1)


def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | pathlib.Path) -> int:
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


# ---------------------------------------------------------------------------------------
# CLI


def _parse_inputs(b: Builder, inputs: Sequence[str]) -> Dict[str, str]:
    files: Dict[str, str] = {}
    for spec in inputs:
        split, sep, path = spec.partition("=")
        if not (sep and split in b.splits):
            if len(b.splits) != 1:
                raise DataError(f"{b.name}: --input takes SPLIT=FILE with SPLIT one of "
                                f"{', '.join(b.splits)}; got {spec!r}")
            split, path = b.splits[0], spec
        if split in files:
            raise DataError(f"{b.name}: split {split} given twice")
        files[split] = path
    return files


def _parser() -> argparse.ArgumentParser:
    names = "\n".join(f"  {b.name:20s} {b.kind:10s} splits: {' '.join(b.splits)}"
                      for b in BUILDERS.values())
    p = argparse.ArgumentParser(
        prog="python -m laserd_client.paper_data",
        description="Build a laserd JSONL dataset from one of the LASER paper's sources, with "
                    "the paper's prompt template, filters, de-duplication and order "
                    "(docs/paper_datasets.md).",
        epilog="builders (kind = the laserd record kind written):\n" + names,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builder", nargs="?", choices=sorted(BUILDERS), metavar="BUILDER")
    p.add_argument("--input", action="append", default=[], metavar="[SPLIT=]FILE",
                   help="a split's rows: JSONL or a JSON array (SPLIT may be left out for a "
                        "one-split builder); give every split the builder reads")
    p.add_argument("--hf-dataset", nargs="?", const="", metavar="NAME",
                   help="load the splits with `datasets` instead (default: the dataset the "
                        "paper loads)")
    p.add_argument("--hf-config", metavar="CONFIG", help="the dataset config (default: the paper's)")
    p.add_argument("--hf-split", action="append", default=[], metavar="SPLIT=HF_SPLIT",
                   help="read a builder split from another HF split name")
    p.add_argument("--tokenizer", metavar="tokenizer.json",
                   help="hotpotqa: the tokenizer of the answer-length filter (the paper: Llama-2's)")
    p.add_argument("--max-answer-tokens", type=int, default=15,
                   help="hotpotqa: keep answers with at most this many tokens, BOS included "
                        "(default 15)")
    p.add_argument("--output", metavar="FILE", help="the laserd JSONL to write")
    p.add_argument("--list", action="store_true", help="list the builders and exit")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    if a.list:
        for b in BUILDERS.values():
            hf = f"{b.hf_name}" + (f" ({b.hf_config})" if b.hf_config else "") if b.hf_name else "-"
            print(f"{b.name}\t{b.kind}\t{' '.join(b.splits)}\t{hf}\t{b.summary}")
        return 0
    if not a.builder or not a.output:
        p.error("BUILDER and --output are required (or --list)")
    b = BUILDERS[a.builder]
    if bool(a.input) == (a.hf_dataset is not None):
        p.error("give either --input (files) or --hf-dataset")
    if b.name != "hotpotqa" and (a.tokenizer or a.max_answer_tokens != 15):
        p.error("--tokenizer and --max-answer-tokens are HotpotQA's answer-length filter; "
                f"{b.name} does not use them")
    try:
        if a.input:
            files = _parse_inputs(b, a.input)
            missing = [s for s in b.splits if s not in files]
            if missing:
                raise DataError(f"{b.name}: missing --input for split(s) {', '.join(missing)} "
                                f"(give {' '.join(s + '=FILE' for s in b.splits)})")
            splits = {s: read_rows(files[s]) for s in b.splits}
        else:
            name = a.hf_dataset or b.hf_name
            if not name:
                raise DataError(f"{b.name}: the paper reads a file, not a Hugging Face dataset; "
                                "pass --input FILE or --hf-dataset NAME")
            config = a.hf_config if a.hf_config is not None else (
                b.hf_config if not a.hf_dataset else None)
            hf_splits: Dict[str, str] = {}
            for m in a.hf_split:
                s, sep, h = m.partition("=")
                if not sep or s not in b.splits or not h:
                    raise DataError(f"--hf-split takes SPLIT=HF_SPLIT with SPLIT one of "
                                    f"{', '.join(b.splits)}; got {m!r}")
                hf_splits[s] = h
            splits = load_hf_splits(b, name, config, hf_splits)
        counter = tokenizer_counter(a.tokenizer) if a.tokenizer else None
        records = build(b, splits, count_tokens=counter, max_answer_tokens=a.max_answer_tokens)
    except DataError as e:
        print(f"paper_data: {e}", file=sys.stderr)
        return 2
    if not records:
        print(f"paper_data: {b.name}: no records left after the paper's filters", file=sys.stderr)
        return 2
    n = write_jsonl(records, a.output)
    read = ", ".join(f"{s} {len(splits[s])}" for s in b.splits)
    print(f"paper_data: {b.name}: read {read}; wrote {n} {b.kind} records to {a.output} "
          f"(laserd's default split: first {validation_size(n)} validation, "
          f"{n - validation_size(n)} test)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
