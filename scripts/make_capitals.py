#!/usr/bin/env python3
"""Builds the capitals held-out set from the Debian packages bsdgames and kgeography-data.

    python3 scripts/make_capitals.py [--out .data/capitals.jsonl]
    python3 scripts/make_capitals.py --choice [--out .data/capitals_choice.jsonl]

Completion records:                 {"prompt": "The capital of France is", "answer": " Paris"}
Choice records (--choice):          {"prompt": "Q: Is Paris the capital of France?\\nA:",
                                     "choices": [" Yes", " No"], "label": 0}

Sources, in priority order:
  1. bsdgames quiz files africa, america, asia, europe (countries), state (US states),
     province (Canadian provinces): lines `name:capital[:...]` in the quiz grammar —
     `|` separates alternatives, `{...}` is an optional part, `[a|b]` a choice; accents
     are spelled as markup alternatives (`Bogot['a|a'|a]`). We take the first
     alternative at the top level that is not an all-caps abbreviation, include optional parts (their first alternative,
     unless it is markup only, as in `P{'}yongyang`), and in `[...]` take the first
     alternative without accent markup (' ^ ` ~ , / ° ").
  2. kgeography-data maps: the country maps (world, continents, caribbean) and the
     first-level divisions of a fixed list of countries (FIRST_LEVEL_MAPS): each
     <division> with <name> and <capital> (not <ignore>d).
Cleaning: whitespace collapsed; entries whose name or capital contains "(" or "/"
dropped; subdivisions whose capital equals their name dropped (a copy task, not a fact).
Deduplication: by prompt. The same name from two sources of the same kind (country /
subdivision) keeps the first source's answer; a name that is a country in one source and
a subdivision with a different capital in another (Georgia: Tbilisi / Atlanta) is
ambiguous and dropped. Identical records are kept once.
Order: sorted by (prompt, answer), then shuffled with random.Random(SEED), so sources
are mixed and the order is fixed. The validation split (first 20%) is thus a fixed,
mixed sample.
Choice set: the first --choice-size completion records (default 100) in that order; even
positions ask about the true capital (label 0, " Yes"), odd positions about a wrong
capital drawn with random.Random(SEED + 1) from the other records (label 1, " No").
"""

import argparse
import glob
import json
import os
import random
import re
import sys
import unicodedata
import xml.etree.ElementTree as ET

SEED = 1729
QUIZ_DIR = "/usr/share/games/bsdgames/quiz"
KGEO_DIR = "/usr/share/kgeography"
QUIZ_COUNTRY_FILES = ("africa", "america", "asia", "europe")
QUIZ_SUBDIV_FILES = ("state", "province")
KGEO_COUNTRY_MAPS = ("world", "africa", "asia", "europe", "ncamerica", "southamerica",
                     "oceania", "caribbean")
FIRST_LEVEL_MAPS = ("usa", "canada", "australia", "germany", "india", "china", "brazil")
MARKUP = set("'^`~,/°\"")


def _split_top(s, sep="|"):
    """Splits s at `sep` characters that are not inside {} or []."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise ValueError(f"unbalanced brackets in {s!r}")
    parts.append(cur)
    return parts


def _group_end(s, i):
    depth = 0
    for j in range(i, len(s)):
        if s[j] in "{[":
            depth += 1
        elif s[j] in "}]":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced brackets in {s!r}")


def _expand(s):
    """One clean string from a quiz pattern without top-level alternatives."""
    out, i = "", 0
    while i < len(s):
        ch = s[i]
        if ch in "{[":
            j = _group_end(s, i)
            alts = [_expand(a) for a in _split_top(s[i + 1:j])]
            if ch == "{":
                first = alts[0]
                if any(c.isalnum() for c in first):
                    out += first
            else:
                clean = [a for a in alts if not (set(a) & MARKUP)]
                out += clean[0] if clean else alts[0]
            i = j + 1
        else:
            out += ch
            i += 1
    return out


def quiz_clean(field):
    """First clean alternative of one quiz field (all-caps abbreviations such as
    SGSSI or UAE are skipped when a longer alternative exists)."""
    alts = _split_top(field)
    full = [a for a in alts if not re.fullmatch(r"[A-Z]+", a)]
    return _norm_space(_expand((full or alts)[0]))


def _norm_space(s):
    return re.sub(r"\s+", " ", s).strip()


def read_quiz(name):
    path = os.path.join(QUIZ_DIR, name)
    pairs = []
    with open(path, encoding="latin-1") as f:  # the quiz files are ASCII
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = _split_top(line, ":")
            pairs.append((quiz_clean(fields[0]), quiz_clean(fields[1])))
    return pairs


def read_kgm(name):
    root = ET.parse(os.path.join(KGEO_DIR, name + ".kgm")).getroot()
    pairs = []
    for d in root.iter("division"):
        if (d.findtext("ignore") or "").strip() == "yes":
            continue
        n, c = d.findtext("name"), d.findtext("capital")
        if n and c:
            pairs.append((_norm_space(n), _norm_space(c)))
    return pairs


def _key(s):
    """Comparison key: case- and accent-insensitive."""
    s = unicodedata.normalize("NFKD", s)
    return "".join(c for c in s if not unicodedata.combining(c)).casefold()


def collect():
    """(name, capital, kind, source) in priority order."""
    entries = []
    for f in QUIZ_COUNTRY_FILES:
        entries += [(n, c, "country", f"bsdgames/{f}") for n, c in read_quiz(f)]
    for f in QUIZ_SUBDIV_FILES:
        entries += [(n, c, "subdivision", f"bsdgames/{f}") for n, c in read_quiz(f)]
    for m in KGEO_COUNTRY_MAPS:
        entries += [(n, c, "country", f"kgeography/{m}") for n, c in read_kgm(m)]
    for m in FIRST_LEVEL_MAPS:
        entries += [(n, c, "subdivision", f"kgeography/{m}") for n, c in read_kgm(m)]
    return entries


def build():
    chosen = {}  # name key -> (name, capital, kind, source)
    ambiguous = set()
    for name, cap, kind, src in collect():
        if not name or not cap or set("(/") & set(name + cap):
            continue
        if kind == "subdivision" and _key(name) == _key(cap):
            continue
        k = _key(name)
        if k in chosen:
            prev = chosen[k]
            if prev[2] != kind and _key(prev[1]) != _key(cap):
                ambiguous.add(k)
            continue
        chosen[k] = (name, cap, kind, src)
    recs = sorted({(f"The capital of {v[0]} is", " " + v[1])
                   for k, v in chosen.items() if k not in ambiguous})
    random.Random(SEED).shuffle(recs)
    return [{"prompt": p, "answer": a} for p, a in recs]


def build_choice(recs, size):
    rng = random.Random(SEED + 1)
    out = []
    for i, r in enumerate(recs[:size]):
        country = r["prompt"][len("The capital of "):-len(" is")]
        cap = r["answer"][1:]
        if i % 2 == 1:
            while True:
                other = rng.choice(recs)["answer"][1:]
                if _key(other) != _key(cap):
                    break
            cap = other
        out.append({"prompt": f"Q: Is {cap} the capital of {country}?\nA:",
                    "choices": [" Yes", " No"], "label": i % 2})
    return out


def main():
    ap = argparse.ArgumentParser(description="Capitals dataset (JSONL) from bsdgames "
                                 "and kgeography-data.")
    ap.add_argument("--out", help="output JSONL (default .data/capitals.jsonl, or "
                    ".data/capitals_choice.jsonl with --choice)")
    ap.add_argument("--choice", action="store_true",
                    help="write Yes/No choice records instead of completions")
    ap.add_argument("--choice-size", type=int, default=100)
    args = ap.parse_args()
    for d in (QUIZ_DIR, KGEO_DIR):
        if not os.path.isdir(d):
            sys.exit(f"{d} missing: install the Debian packages bsdgames and "
                     "kgeography-data")
    recs = build()
    if args.choice:
        recs = build_choice(recs, args.choice_size)
    out = args.out or os.path.join(".data", "capitals_choice.jsonl" if args.choice
                                   else "capitals.jsonl")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(recs)} records to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
