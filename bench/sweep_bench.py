#!/usr/bin/env python3
"""LASER sweep speed: laserd against the paper's method, and randomized vs exact SVD.

Mode `sweep` (default) — one grid, both sides in one run, one JSON report on stdout:

  python3 bench/sweep_bench.py sweep --model .data/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --data .data/capitals.jsonl --types all --layers 22-29 \
      --rho 0.01,0.05,0.1,0.2,0.5,0.9 --paper-subset 3 --laserd build/server/laserd

  (a) The paper's method as its code runs it: the model loaded once here and deep-copied
      per intervention (the code's `get_edited_model(in_place=False)`; the reload per
      process its scripts also pay is measured once and reported separately),
      W_k from torch.manual_seed(seed) + torch.svd_lowrank(W, q=k, niter=2) (no
      oversampling), then every example scored teacher-forced with batch size 1
      (prompt + answer, fp32, log-softmax over the vocabulary). This is a LOWER bound on
      the paper code's cost: its scripts also call model.generate per example. A full
      grid takes hours this way, so only --paper-subset interventions, spread evenly over
      the plan, are timed; the per-intervention mean is extrapolated to the grid, and the
      report says so (`paper.extrapolated`).
  (b) laserd: the same grid as a laser.v1.SweepSpec (protobuf JSON) run with
      `laserd sweep --model M --spec FILE --out results.jsonl`; every output line is a
      laser.v1.Result (first line: the baseline). Interventions/minute = results past the
      baseline / wall time. The time split comes from the results' svd_duration and
      eval_duration (rest = wall − both), and from stderr lines naming svd / forward /
      rest when laserd prints them. Skipped (reported as missing) when the binary is absent.

  Rates are given per minute of wall time and per minute of CPU time (user + sys of the
  laserd process; process_time of the torch side): on a shared machine the wall-clock
  ratio moves with other users' load, the CPU-time ratio much less (both sides run one
  thread by default).

  Both sides run with --threads threads (torch.set_num_threads, and OPENBLAS_NUM_THREADS /
  OMP_NUM_THREADS for laserd), so the ratio is not a thread-count artefact.

Mode `svd` — randomized against exact truncated SVD, speed and error:

  python3 bench/sweep_bench.py svd --svd-bench build/bench/svd_bench \
      --shapes 576x1536,4096x4096 --rho 0.01,0.05,0.1

  For each shape, runs laserd's svd_bench (exact sgesdd, randomized with its defaults,
  paper recipe) and, in this process, numpy.linalg.svd (LAPACK gesdd, float32 and float64)
  and torch.svd_lowrank (the paper's call) on a matrix of the same shape. 576x1536 is the
  real SmolLM2 mlp.out of --svd-layer (svd_bench reads it from the GGUF; here it is
  dequantized with gguf-py, the same values); other shapes are Gaussian (svd_bench's own
  generator there, numpy's here: same distribution, not the same draws).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TYPES = ["attn.q", "attn.k", "attn.v", "attn.o", "mlp.in", "mlp.up", "mlp.out"]
HF_NAMES = {"attn.q": "self_attn.q_proj", "attn.k": "self_attn.k_proj",
            "attn.v": "self_attn.v_proj", "attn.o": "self_attn.o_proj",
            "mlp.in": "mlp.gate_proj", "mlp.up": "mlp.up_proj", "mlp.out": "mlp.down_proj"}


def floats(s):
    return [float(x) for x in s.split(",") if x]


def layers_arg(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return sorted(set(out))


def set_threads(n):
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(n)


def duration_s(d):
    """protobuf JSON Duration ("1.5s") or {"seconds","nanos"} to float seconds."""
    if d is None:
        return 0.0
    if isinstance(d, str):
        return float(d.rstrip("s"))
    return float(d.get("seconds", 0)) + float(d.get("nanos", 0)) * 1e-9


# ------------------------------------------------------------------ examples
def load_examples(data, model_path, scores):
    """Token ids of every example (lm-eval rule). From the committed scoring reference
    when it was made from the same dataset bytes; else tokenized here with the GGUF
    vocabulary (reference_smollm2.py's peers)."""
    import hashlib
    raw = open(data, "rb").read()
    sha = hashlib.sha256(raw).hexdigest()
    if scores and os.path.exists(scores):
        ref = json.load(open(scores, encoding="utf-8"))
        if ref.get("dataset_sha256") == sha:
            return [(e["prompt_ids"], e["answer_ids"]) for e in ref["examples"]], \
                f"ids from {os.path.relpath(scores, ROOT)}"
    sys.path.insert(0, os.path.join(ROOT, "scripts", "fixtures"))
    import reference_smollm2 as rs
    fields = rs.gguf_tokenizer_fields(model_path)
    bos = fields["bos_id"] if fields["add_bos"] else None
    try:
        peer = rs.LlamaCppPeer(model_path)
    except ImportError:
        peer = rs.HfTokenizersPeer(fields)
    out = []
    for line in raw.decode("utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            ctx, ans, _ = rs.encode_pair(peer.encode, r.get("prompt", r.get("question")),
                                         r.get("answer", r.get("gold-answer")), bos)
            out.append((ctx, ans))
    return out, f"tokenized here with {peer.name}"


def kept_rank(m, n, rho):
    return max(1, int(min(m, n) * rho))


def metrics(vals, n_val):
    def agg(part):
        n = len(part)
        return {"examples": n, "correct": sum(v[1] for v in part),
                "accuracy": 100.0 * sum(v[1] for v in part) / n if n else 0.0,
                "log_loss": sum(-v[0] / v[2] for v in part) / n if n else 0.0}
    return {"validation": agg(vals[:n_val]), "test": agg(vals[n_val:])}


# ------------------------------------------------------------------ paper side
def paper_side(args, plan, examples, n_val):
    import copy
    import torch
    import transformers
    torch.set_num_threads(args.threads)
    d, name = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        d, gguf_file=name, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    load_s = time.perf_counter() - t0

    s = args.paper_subset
    picks = sorted({round(i * (len(plan) - 1) / max(1, s - 1)) for i in range(s)}) \
        if s > 1 else [0]
    runs = []
    for pi in picks:
        mtype, layer, rho = plan[pi]
        t_start = time.perf_counter()
        c_start = time.process_time()
        edited = copy.deepcopy(model)                       # get_edited_model(in_place=False)
        t_copy = time.perf_counter() - t_start
        mod = edited.model.layers[layer]
        for part in HF_NAMES[mtype].split("."):
            mod = getattr(mod, part)
        w = mod.weight.data
        k = kept_rank(w.shape[0], w.shape[1], rho)
        t1 = time.perf_counter()
        torch.manual_seed(args.seed)
        u, sv, v = torch.svd_lowrank(w, q=k, niter=2)       # do_low_rank
        wk = u @ torch.diag(sv) @ v.T
        mod.weight = torch.nn.Parameter(wk)
        t_svd = time.perf_counter() - t1
        rel = float(torch.linalg.norm(w.double() - wk.double()) / torch.linalg.norm(w.double()))
        t1 = time.perf_counter()
        vals = []
        for ctx, ans in examples:                            # batch size 1
            ids = torch.tensor([ctx + ans])
            with torch.no_grad():
                lg = edited(input_ids=ids).logits[0].float()
            rows = lg[len(ctx) - 1:len(ctx) + len(ans) - 1]
            lp = torch.log_softmax(rows.double(), -1)[torch.arange(len(ans)),
                                                        torch.tensor(ans)]
            greedy = bool((rows.argmax(-1) == torch.tensor(ans)).all())
            vals.append((float(lp.sum()), greedy, len(ans)))
        t_fwd = time.perf_counter() - t1
        del edited
        total = time.perf_counter() - t_start
        cpu = time.process_time() - c_start
        runs.append({"plan_index": pi, "matrix_type": mtype, "layer": layer, "rho": rho,
                     "rank": k, "relative_error": rel, "metrics": metrics(vals, n_val),
                     "seconds": {"copy": t_copy, "svd": t_svd, "forward": t_fwd,
                                 "rest": total - t_copy - t_svd - t_fwd, "total": total,
                                 "cpu": cpu}})
        print(f"paper: {mtype} L{layer} rho {rho} k={k}: {total:.1f} s "
              f"(svd {t_svd:.2f}, forward {t_fwd:.1f})", file=sys.stderr)
    mean = sum(r["seconds"]["total"] for r in runs) / len(runs)
    mean_cpu = sum(r["seconds"]["cpu"] for r in runs) / len(runs)
    split = {key: sum(r["seconds"][key] for r in runs) / len(runs)
             for key in ("copy", "svd", "forward", "rest")}
    return {
        "method": "deep copy per intervention, torch.svd_lowrank(q=k, niter=2) seeded, "
                  "teacher-forced batch size 1, fp32 eager, threads=%d" % args.threads,
        "extrapolated": True,
        "timed_interventions": len(runs),
        "note": "timed on a subset of the grid, spread evenly over the plan; rate and "
                "full-grid time are extrapolated from the mean per intervention",
        "model_load_s": load_s,
        "mean_seconds_per_intervention": mean,
        "mean_split_s": split,
        "interventions_per_minute": 60.0 / mean,
        "mean_cpu_seconds_per_intervention": mean_cpu,
        "interventions_per_cpu_minute": 60.0 / mean_cpu,
        "with_reload_per_intervention": {
            "interventions_per_minute": 60.0 / (mean + load_s)},
        "runs": runs,
    }


# ------------------------------------------------------------------ careful-user side
def careful_side(args, plan, examples, n_val):
    """What a careful user writes in an afternoon with transformers: the model loaded
    once, one exact SVD (torch.linalg.svd, fp32) per matrix reused for every rho of the
    grid, W_k written into the weight in place and the original restored after the last
    rho, every example scored teacher-forced in right-padded batches of --careful-batch
    (default attention implementation), log-softmax over the answer positions only."""
    import torch
    import transformers
    torch.set_num_threads(args.threads)
    d, name = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=name,
                                                              dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - t0
    B = args.careful_batch

    def score():
        vals = []
        for i in range(0, len(examples), B):
            chunk = examples[i:i + B]
            n = max(len(c) + len(a) for c, a in chunk)
            ids = torch.zeros((len(chunk), n), dtype=torch.long)
            mask = torch.zeros((len(chunk), n), dtype=torch.long)
            for j, (c, a) in enumerate(chunk):
                ids[j, :len(c) + len(a)] = torch.tensor(c + a)
                mask[j, :len(c) + len(a)] = 1
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits
            for j, (c, a) in enumerate(chunk):
                rows = logits[j, len(c) - 1:len(c) + len(a) - 1]
                tgt = torch.tensor(a)
                lp = torch.log_softmax(rows, -1)[torch.arange(len(a)), tgt]
                vals.append((float(lp.double().sum()), bool((rows.argmax(-1) == tgt).all()),
                             len(a)))
        return vals

    groups = {}
    for mtype, layer, rho in plan:
        groups.setdefault((mtype, layer), []).append(rho)
    runs = []
    c0, w0 = time.process_time(), time.perf_counter()
    svd_total = fwd_total = 0.0
    base = metrics(score(), n_val)
    base_s = time.perf_counter() - w0
    for (mtype, layer), rhos in groups.items():
        mod = model.model.layers[layer]
        for part in HF_NAMES[mtype].split("."):
            mod = getattr(mod, part)
        w = mod.weight.data
        orig = w.clone()
        t1 = time.perf_counter()
        u, sv, vh = torch.linalg.svd(orig, full_matrices=False)
        t_svd = time.perf_counter() - t1
        svd_total += t_svd
        for rho in rhos:
            k = kept_rank(w.shape[0], w.shape[1], rho)
            t1 = time.perf_counter()
            w.copy_((u[:, :k] * sv[:k]) @ vh[:k])
            vals = score()
            t_fwd = time.perf_counter() - t1
            fwd_total += t_fwd
            runs.append({"matrix_type": mtype, "layer": layer, "rho": rho, "rank": k,
                         "metrics": metrics(vals, n_val),
                         "seconds": {"forward": t_fwd}})
        w.copy_(orig)
        print(f"careful: {mtype} L{layer} {len(rhos)} rho (svd {t_svd:.2f} s)",
              file=sys.stderr)
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    cfg = model.config
    return {
        "method": "transformers, model loaded once, one torch.linalg.svd per matrix "
                  "reused for every rho, in-place edit and restore, right-padded "
                  f"batches of {B}, fp32, threads={args.threads}",
        "model_load_s": load_s, "baseline": base, "baseline_s": base_s,
        "wall_s": wall, "cpu_s": cpu, "interventions": len(runs),
        "split_s": {"svd": svd_total, "forward": fwd_total,
                    "baseline_and_rest": wall - svd_total - fwd_total},
        # like laserd's rate: the baseline is inside the timed span
        "interventions_per_minute": 60.0 * len(runs) / wall,
        "interventions_per_cpu_minute": 60.0 * len(runs) / cpu,
        "config": {"layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
                   "intermediate": cfg.intermediate_size,
                   "heads": cfg.num_attention_heads,
                   "kv_heads": getattr(cfg, "num_key_value_heads", cfg.num_attention_heads),
                   "head_dim": getattr(cfg, "head_dim", None) or
                               cfg.hidden_size // cfg.num_attention_heads,
                   "vocab": cfg.vocab_size},
        "runs": runs,
    }


def flop_ceiling(plan, examples, cfg, batch_tokens=4096):
    """The largest speedup exact scoring can give at equal arithmetic efficiency: GEMM
    FLOPs of the careful user's sweep over laserd's (attention score FLOPs ignored; the
    sequences are short). Careful user: every token of every example through every
    layer and the LM head, per intervention. laserd: layers l..L-1 only (the hidden
    states before the edited layer are cached once per layer), on the rows left after
    the examples of each batch (laserd's default budget of 4,096 input tokens,
    here filled in file order) share their common token prefixes (a prefix tree over
    prompt + answer minus its last token), and the LM head on the answer rows only. The
    one-off cost of the cached prefixes is not counted, so this is an upper bound."""
    d, ff, L, V = cfg["hidden"], cfg["intermediate"], cfg["layers"], cfg["vocab"]
    qd = cfg["heads"] * cfg["head_dim"]
    kvd = cfg["kv_heads"] * cfg["head_dim"]
    f_layer = 2 * (d * qd + 2 * d * kvd + qd * d + 3 * d * ff)
    f_head = 2 * d * V
    all_rows = sum(len(c) + len(a) for c, a in examples)
    answer_rows = sum(len(a) for c, a in examples)
    trie_rows, seen, used = 0, set(), 0
    for c, a in examples:  # batches of at most `batch_tokens` input tokens, file order
        seq = tuple(c + a[:-1])
        if used + len(seq) > batch_tokens and seen:
            trie_rows, seen, used = trie_rows + len(seen), set(), 0
        used += len(seq)
        for n in range(1, len(seq) + 1):
            seen.add(seq[:n])
    trie_rows += len(seen)
    careful = laserd = 0
    for _, layer, _ in plan:
        careful += all_rows * (L * f_layer + f_head)
        laserd += trie_rows * (L - layer) * f_layer + answer_rows * f_head
    return {"ceiling": careful / laserd, "careful_rows": all_rows,
            "laserd_prefix_tree_rows": trie_rows, "answer_rows": answer_rows,
            "laserd_batch_tokens": batch_tokens, "careful_gflop": careful / 1e9,
            "laserd_gflop": laserd / 1e9}


# ------------------------------------------------------------------ laserd side
def laserd_side(args, types, layers, rhos, n_plan, tmp):
    """Runs laserd on the grid (or on the --laserd-rho subset of its ranks)."""
    if not os.path.exists(args.laserd):
        return {"available": False, "reason": f"{args.laserd} not found"}
    spec = {
        "dataset": {"path": os.path.abspath(args.data)},
        "task": "TASK_KIND_COMPLETION",
        "matrix_types": types,
        "layers": {"indices": layers},
        "rho": {"values": rhos},
        "svd": {"method": args.laserd_svd, "seed": str(args.seed)},
        "split": {"mode": "SPLIT_MODE_FIRST"},
        "top_k": [1, 5, 10],
    }
    if args.laserd_batch:
        spec["batch"] = {"batch_size": args.laserd_batch}
    spec_path = os.path.join(tmp, "spec.json")
    out_path = os.path.join(tmp, "results.jsonl")
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=1)
    cmd = [args.laserd, "sweep", "--model", args.model, "--spec", spec_path,
           "--out", out_path] + args.laserd_arg
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads),
               OMP_NUM_THREADS=str(args.threads))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=args.laserd_timeout)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    rep = {"available": True, "command": " ".join(cmd), "spec": spec, "exit_code": p.returncode,
           "wall_s": wall, "cpu_s": cpu,
           "stderr_tail": p.stderr.strip().splitlines()[-12:]}
    if p.returncode != 0:
        rep["error"] = p.stderr.strip()[-2000:]
        return rep
    results = [json.loads(l) for l in open(out_path) if l.strip()]
    singles = results[1:]
    n = len(singles)
    svd_s = sum(duration_s(r.get("svd_duration")) for r in singles)
    eval_s = sum(duration_s(r.get("eval_duration")) for r in results)
    rep.update({
        "results": len(results), "interventions": n, "planned_interventions": n_plan,
        # wall time of the whole command: model load and the baseline included
        "interventions_per_minute": 60.0 * n / wall if wall > 0 else None,
        # per minute of CPU time (user + sys): independent of other users' load
        "interventions_per_cpu_minute": 60.0 * n / cpu if cpu > 0 else None,
        # first line: the job with its baseline (or a Result with metrics)
        "baseline": results[0].get("baseline") or results[0].get("metrics"),
    })
    if svd_s or eval_s:
        rep["split_from_results_s"] = {"svd": svd_s, "eval": eval_s,
                                       "rest": wall - svd_s - eval_s}
    # laserd's closing summary on stderr: "sweep time 80.0 s: ..." then one line per
    # part ("  SVD   0.46 s   0.6%", "  forward ...", "  prefix ...", "  rest ...").
    split = {}
    m = re.search(r"sweep time ([0-9.]+) s", p.stderr)
    if m:
        split["sweep_time"] = float(m.group(1))
    for m in re.finditer(r"^\s+([A-Za-z][\w/ -]*?)\s+([0-9.]+) s\s+([0-9.]+)%(.*)$",
                         p.stderr, re.M):
        split[m.group(1).strip().lower()] = {"s": float(m.group(2)),
                                             "pct": float(m.group(3)),
                                             "note": m.group(4).strip()}
    if split:
        rep["split_from_stderr"] = split
    rep["_results"] = results
    return rep


def results_by_key(results):
    """laserd's single results by (matrix type, layer, rho)."""
    return {(r["intervention"]["matrix_type"], r["intervention"]["layer"],
             round(r["intervention"]["rho"], 9)): r for r in results[1:]
            if r.get("intervention") and r.get("metrics")}


def compare_metrics(runs, results):
    """Largest metric differences between the careful user's interventions and laserd's
    results for the same (type, layer, rho)."""
    bykey = results_by_key(results)
    out = {"matched": 0, "same_correct_counts": 0, "max_abs_accuracy_diff": 0.0,
           "max_abs_log_loss_diff": 0.0, "same_rank": 0}
    for run in runs:
        r = bykey.get((run["matrix_type"], run["layer"], round(run["rho"], 9)))
        if not r:
            continue
        out["matched"] += 1
        out["same_rank"] += int(int(r["intervention"].get("rank", -1)) == run["rank"])
        same = True
        for part in ("validation", "test"):
            a, b = run["metrics"][part], r["metrics"].get(part, {})
            same &= int(b.get("correct", 0)) == a["correct"]
            out["max_abs_accuracy_diff"] = max(out["max_abs_accuracy_diff"],
                                               abs(a["accuracy"] - b.get("accuracy", 0.0)))
            out["max_abs_log_loss_diff"] = max(out["max_abs_log_loss_diff"],
                                               abs(a["log_loss"] - b.get("log_loss", 0.0)))
        out["same_correct_counts"] += int(same)
    return out


def best_of(results):
    singles = [r for r in results[1:] if r.get("metrics")]
    if not singles:
        return None
    b = max(singles, key=lambda r: (r["metrics"]["validation"].get("accuracy", 0),
                                    -r["metrics"]["validation"].get("log_loss", 0)))
    return {"intervention": b.get("intervention"), "metrics": b.get("metrics")}


def sweep_mode(args):
    set_threads(args.threads)
    types = TYPES if args.types == "all" else args.types.split(",")
    layers = layers_arg(args.layers)
    rhos = floats(args.rho)
    plan = [(t, l, r) for t in types for l in layers for r in rhos]
    lz_rhos = floats(args.laserd_rho) if args.laserd_rho else rhos
    lz_plan = [(t, l, r) for t in types for l in layers for r in lz_rhos]
    examples, ids_source = load_examples(args.data, args.model, args.scores)
    n_val = int(0.2 * len(examples))
    report = {"grid": {"types": types, "layers": layers, "rho": rhos,
                       "interventions": len(plan)},
              "examples": len(examples), "validation": n_val,
              "test": len(examples) - n_val, "token_ids": ids_source,
              "threads": args.threads, "machine_cpus": os.cpu_count(),
              "load_average_at_start": os.getloadavg()}
    results = None
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_laserd:
            lz = laserd_side(args, types, layers, lz_rhos, len(lz_plan), tmp)
            if lz_rhos != rhos:
                lz["subset_note"] = (
                    f"laserd ran {len(lz_plan)} of the grid's {len(plan)} interventions: "
                    f"every type and layer, rho {lz_rhos} only; its rate is measured on "
                    f"those (fewer rho per matrix means fewer results per SVD and per "
                    f"cached prefix, so this understates laserd's full-grid rate)")
            results = lz.pop("_results", None)
            if results:
                lz["best"] = best_of(results)
            report["laserd"] = lz
        if not args.skip_careful:
            cu = careful_side(args, lz_plan, examples, n_val)
            cu["flop_ceiling"] = flop_ceiling(lz_plan, examples, cu["config"])
            lz = report.get("laserd", {})
            if lz.get("interventions_per_minute") and results:
                cu["speedup"] = lz["interventions_per_minute"] / cu["interventions_per_minute"]
                cu["speedup_cpu_time"] = (lz["interventions_per_cpu_minute"] /
                                          cu["interventions_per_cpu_minute"])
                cu["metrics_vs_laserd"] = compare_metrics(cu["runs"], results)
            report["careful"] = cu
            print(f"careful user: {cu['interventions_per_minute']:.2f}/min; laserd "
                  f"{lz.get('interventions_per_minute') or 0:.2f}/min; ratio "
                  f"{cu.get('speedup', 0):.2f}x (FLOP ceiling "
                  f"{cu['flop_ceiling']['ceiling']:.2f}x)", file=sys.stderr)
        if args.paper_subset > 0:
            report["paper"] = paper_side(args, lz_plan, examples, n_val)
            report["paper"]["planned_interventions"] = len(plan)
            if report.get("laserd", {}).get("interventions_per_minute") and results:
                pr = report["paper"]
                report["speedup"] = (report["laserd"]["interventions_per_minute"] /
                                     pr["interventions_per_minute"])
                report["speedup_vs_paper_with_reload"] = (
                    report["laserd"]["interventions_per_minute"] /
                    pr["with_reload_per_intervention"]["interventions_per_minute"])
                report["speedup_cpu_time"] = (
                    report["laserd"]["interventions_per_cpu_minute"] /
                    pr["interventions_per_cpu_minute"])
                report["target_speedup"] = 30
                # The same interventions on both sides (different sketches unless both
                # use exact; metrics then agree only within the sketch's randomness).
                bykey = results_by_key(results)
                for run in pr["runs"]:
                    r = bykey.get((run["matrix_type"], run["layer"], round(run["rho"], 9)))
                    if r:
                        run["laserd"] = {"rank": r["intervention"].get("rank"),
                                         "relative_error":
                                             r["intervention"].get("relative_error"),
                                         "metrics": r.get("metrics")}
    if "paper" in report:
        pr = report["paper"]
        pr["extrapolated_full_grid_minutes"] = pr["mean_seconds_per_intervention"] * \
            len(plan) / 60.0
        pr["with_reload_per_intervention"]["extrapolated_full_grid_minutes"] = \
            len(plan) / pr["with_reload_per_intervention"]["interventions_per_minute"]
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))


# ------------------------------------------------------------------ svd mode
def svd_mode(args):
    set_threads(args.threads)
    import numpy as np
    rhos = floats(args.rho)
    out = {"threads": args.threads, "rho": rhos, "shapes": []}
    for shape in args.shapes.split(","):
        m, n = map(int, shape.lower().split("x"))
        entry = {"shape": [m, n], "ks": [kept_rank(m, n, r) for r in rhos]}
        real = (m, n) == (576, 1536) and not args.svd_random_only
        # laserd's svd_bench
        if os.path.exists(args.svd_bench):
            cmd = [args.svd_bench, "--rho", args.rho, "--seed", str(args.seed),
                   "--exact64", "false"]
            cmd += (["--model", args.model, "--type", "mlp.out", "--layer",
                     str(args.svd_layer)] if real else ["--random", shape])
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lz = {"command": " ".join(cmd), "exit_code": p.returncode, "raw": p.stdout}
            for line in p.stdout.splitlines():
                mm = re.match(r"exact \(sgesdd, all k\)\s+([0-9.]+)s\s+err(.*)", line)
                if mm:
                    lz["exact_sgesdd_s"] = float(mm.group(1))
                    lz["exact_errors"] = [float(x) for x in mm.group(2).split()]
                mm = re.match(r"(randomized p=-1 q=-1|paper \(p=0 q=2\))\s+k=(\d+)\s+"
                              r"([0-9.]+)s\s+err ([0-9.]+)\s+excess ([-+0-9.]+)%", line)
                if mm:
                    key = "randomized_default" if mm.group(1).startswith("rand") else "paper"
                    lz.setdefault(key, []).append({
                        "k": int(mm.group(2)), "s": float(mm.group(3)),
                        "error": float(mm.group(4)), "excess_pct": float(mm.group(5))})
            entry["laserd_svd_bench"] = lz
        else:
            entry["laserd_svd_bench"] = {"available": False, "reason": args.svd_bench}
        # the same matrix (real) or the same shape (Gaussian) in numpy / torch
        if real:
            import gguf
            r = gguf.GGUFReader(args.model)
            t = next(t for t in r.tensors if t.name == f"blk.{args.svd_layer}.ffn_down.weight")
            a = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type),
                           dtype=np.float32).reshape(m, n)
            src = f"SmolLM2 blk.{args.svd_layer}.ffn_down (mlp.out), gguf-py dequantized"
        else:
            a = np.random.default_rng(args.seed).standard_normal((m, n), dtype=np.float32)
            src = "numpy Gaussian (same shape as svd_bench's, not the same draws)"
        np_rep = {"matrix": src}
        for dt in [np.dtype(x).type for x in args.numpy_dtypes.split(",")]:
            x = a.astype(dt)
            t0 = time.perf_counter()
            s = np.linalg.svd(x, full_matrices=False, compute_uv=True)[1]
            np_rep[f"exact_{np.dtype(dt).name}_s"] = time.perf_counter() - t0
            s2 = s.astype(np.float64) ** 2
            np_rep[f"exact_{np.dtype(dt).name}_errors"] = [
                float(np.sqrt(s2[k:].sum() / s2.sum())) for k in entry["ks"]]
        entry["numpy_lapack"] = np_rep
        try:
            import torch
            torch.set_num_threads(args.threads)
            w = torch.from_numpy(a)
            ex = np_rep.get("exact_float64_errors") or np_rep["exact_float32_errors"]
            pr = []
            for k, e in zip(entry["ks"], ex):
                torch.manual_seed(args.seed)
                t0 = time.perf_counter()
                u, s, v = torch.svd_lowrank(w, q=k, niter=2)
                wk = u @ torch.diag(s) @ v.T
                dt_ = time.perf_counter() - t0
                err = float(torch.linalg.norm(w.double() - wk.double()) /
                            torch.linalg.norm(w.double()))
                pr.append({"k": k, "s": dt_, "error": err,
                           "excess_pct": 100.0 * (err / e - 1.0)})
            entry["torch_svd_lowrank_paper"] = pr
        except ImportError:
            pass
        out["shapes"].append(entry)
        print(f"svd: {shape} done", file=sys.stderr)
    print(json.dumps(out, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", nargs="?", default="sweep", choices=["sweep", "svd"])
    ap.add_argument("--model", default=os.path.join(
        ROOT, ".data", "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--data", default=os.path.join(ROOT, ".data", "capitals.jsonl"))
    ap.add_argument("--scores", default=os.path.join(
        ROOT, "tests", "fixtures", "smollm2_capitals_reference.json"),
        help="scoring reference whose token ids are reused when the dataset matches")
    ap.add_argument("--types", default="all")
    ap.add_argument("--layers", default="22-29")
    ap.add_argument("--rho", default="0.01,0.05,0.1,0.2,0.5,0.9")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paper-subset", type=int, default=3,
                    help="interventions of the grid timed with the paper's method (0: skip)")
    ap.add_argument("--skip-careful", action="store_true",
                    help="do not run the careful-user transformers peer")
    ap.add_argument("--careful-batch", type=int, default=16,
                    help="padded batch size of the careful-user peer")
    ap.add_argument("--laserd", default=os.path.join(ROOT, "build", "server", "laserd"))
    ap.add_argument("--laserd-svd", default="SVD_METHOD_AUTO")
    ap.add_argument("--laserd-rho", default="",
                    help="run laserd on these rho only (a sub-grid; stated in the report)")
    ap.add_argument("--laserd-batch", type=int, default=0)
    ap.add_argument("--laserd-arg", action="append", default=[],
                    help="extra argument for laserd sweep (repeatable)")
    ap.add_argument("--laserd-timeout", type=int, default=3600)
    ap.add_argument("--skip-laserd", action="store_true")
    ap.add_argument("--svd-bench", default=os.path.join(ROOT, "build", "bench", "svd_bench"))
    ap.add_argument("--shapes", default="576x1536,4096x4096")
    ap.add_argument("--svd-layer", type=int, default=20)
    ap.add_argument("--svd-random-only", action="store_true")
    ap.add_argument("--numpy-dtypes", default="float32,float64",
                    help="dtypes of the numpy.linalg.svd timings (svd mode)")
    args = ap.parse_args()
    if args.mode == "svd":
        if args.rho == "0.01,0.05,0.1,0.2,0.5,0.9":
            args.rho = "0.01,0.05,0.1"
        svd_mode(args)
    else:
        sweep_mode(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
