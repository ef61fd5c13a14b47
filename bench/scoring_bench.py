#!/usr/bin/env python3
"""Scoring forward pass: laserd against transformers on the same examples, in one run.

Both sides score the same token sequences (prompt + answer, the last token not
fed, as lm-evaluation-harness does) in batches of the same size: transformers with
a right-padded batch and an attention mask, laserd with its packed batch. The
laserd side (build/bench/forward_bench) also measures the machine's SGEMM rate
on the model's own layer shapes in the same run. Prints one JSON report.

  python3 bench/scoring_bench.py --model .data/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --reference tests/fixtures/smollm2_capitals_reference.json --batch 32
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--reference", required=True,
                    help="reference JSON with per-example prompt_ids and answer_ids")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bench-bin", default="build/bench/forward_bench")
    ap.add_argument("--limit", type=int, default=0,
                    help="score only the reference's first N examples (0: all)")
    args = ap.parse_args()

    ref = json.load(open(args.reference))
    seqs = []
    examples = ref["examples"][:args.limit] if args.limit else ref["examples"]
    for ex in examples:
        seqs.append({"tokens": ex["prompt_ids"] + ex["answer_ids"],
                     "answer_start": len(ex["prompt_ids"])})

    # laserd (and the SGEMM rate), measured first while nothing else runs.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"sequences": seqs}, f)
        seq_path = f.name
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    out = subprocess.run([args.bench_bin, "--model", args.model, "--seqs", seq_path,
                          "--batch", str(args.batch), "--reps", str(args.reps)],
                         check=True, capture_output=True, text=True, env=env).stdout
    laserd = json.loads(out)

    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(args.threads)
    d, name = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    hf_load = time.perf_counter() - t0

    def run_hf():
        for i in range(0, len(seqs), args.batch):
            chunk = seqs[i:i + args.batch]
            inputs = [s["tokens"][:-1] for s in chunk]
            T = max(len(x) for x in inputs)
            ids = torch.zeros((len(inputs), T), dtype=torch.long)
            mask = torch.zeros((len(inputs), T), dtype=torch.long)
            for r, x in enumerate(inputs):
                ids[r, :len(x)] = torch.tensor(x)
                mask[r, :len(x)] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask).logits
                lp = torch.log_softmax(logits.float(), dim=-1)
                for r, s in enumerate(chunk):
                    pos = torch.arange(s["answer_start"] - 1, len(s["tokens"]) - 1)
                    gold = torch.tensor(s["tokens"][s["answer_start"]:])
                    lp[r, pos, gold].sum().item()

    run_hf()  # warm-up
    best = 1e30
    for _ in range(args.reps):
        t0 = time.perf_counter()
        run_hf()
        best = min(best, time.perf_counter() - t0)
    hf_tps = laserd["input_tokens"] / best
    report = {
        "examples": len(seqs),
        "batch": args.batch,
        "threads": args.threads,
        "input_tokens": laserd["input_tokens"],
        "transformers": {"best_s": best, "tokens_per_s": hf_tps, "load_s": hf_load,
                         "torch": torch.__version__},
        "laserd": laserd,
        "speedup_vs_transformers": laserd["tokens_per_s"] / hf_tps,
        "fraction_of_sgemm_rate": laserd["fraction_of_sgemm_mlp_shape"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
