#!/usr/bin/env python3
"""Greedy generation: laserd against transformers generate() on the same prompts, in one run.

Both sides generate greedily for the same prompt ids (the capitals prompts by
default) with the same max_new_tokens and the same EOS, in batches of the same
size: laserd (build/bench/generate_bench) with its KV cache and packed batches,
transformers with a left-padded batch, an attention mask and its KV cache.
Throughput counts the tokens each sequence generated up to and including its
EOS (the pad tokens transformers appends to finished sequences are not
counted). Also reports how many sequences' ids agree (left padding may change
floating-point sums in transformers). Prints one JSON report.

  python3 bench/generation_bench.py --model .data/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --reference tests/fixtures/smollm2_generation_reference.json --batch 32 --max-new-tokens 16
"""
import argparse
import json
import os
import subprocess
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--reference", required=True,
                    help="generation reference JSON (its capitals set gives the prompt ids)")
    ap.add_argument("--set", default="capitals")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bench-bin", default="build/bench/generate_bench")
    ap.add_argument("--limit", type=int, default=0,
                    help="only the set's first N prompts (0: all)")
    args = ap.parse_args()

    ref = json.load(open(args.reference))
    eos = ref["eos_id"]
    exs = next(s for s in ref["sets"] if s["name"] == args.set)["examples"]
    if args.limit:
        exs = exs[:args.limit]
    prompts = [e["prompt_ids"] for e in exs]

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"prompts": prompts}, f)
        path = f.name
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    out = subprocess.run([args.bench_bin, "--model", args.model, "--prompts", path,
                          "--batch", str(args.batch), "--reps", str(args.reps),
                          "--max-new-tokens", str(args.max_new_tokens), "--eos", str(eos)],
                         check=True, capture_output=True, text=True, env=env).stdout
    laserd = json.loads(out)
    os.unlink(path)

    import torch
    import transformers
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(args.model)), gguf_file=os.path.basename(args.model),
        dtype=torch.float32)
    model.eval()
    load = time.time() - t0
    best, ids = 1e30, []
    for _ in range(args.reps):
        t0 = time.time()
        ids, tokens = [], 0
        for s in range(0, len(prompts), args.batch):
            b = prompts[s:s + args.batch]
            width = max(len(p) for p in b)
            inp = torch.tensor([[eos] * (width - len(p)) + p for p in b])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in b])
            with torch.no_grad():
                full = model.generate(inp, attention_mask=mask, do_sample=False,
                                      max_new_tokens=args.max_new_tokens, eos_token_id=eos,
                                      pad_token_id=eos)
            for row in full[:, width:].tolist():
                cut = row.index(eos) + 1 if eos in row else len(row)
                ids.append(row[:cut])
                tokens += cut
        best = min(best, time.time() - t0)
    same = sum(a == b for a, b in zip(ids, laserd["ids"]))
    report = {
        "prompts": len(prompts), "batch": args.batch, "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "laserd": {"seconds": laserd["seconds"], "generated_tokens": laserd["generated_tokens"],
                   "tokens_per_second": laserd["tokens_per_second"]},
        "transformers": {"seconds": best, "generated_tokens": tokens,
                         "tokens_per_second": tokens / best, "load_seconds": load,
                         "version": transformers.__version__, "torch": torch.__version__},
        "speedup": best / laserd["seconds"],
        "sequences_with_identical_ids": same,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
