#!/usr/bin/env python3
"""The PyTorch/transformers peer of gpu_bench, on the same GPU in the same device check.

It reads the sequences gpu_bench's prepare section wrote (sequences.json: the
model shape, the forward batch, the sweep's tokenized examples), so both sides
score the same tokens, and measures:
  gemm     bf16 matrix products through torch on random data (the ceiling)
  forward  transformers' LlamaForCausalLM(config) with random weights, bf16, on
           the forward batch (the last `forward_scored` positions' logits)
  paper    the LASER paper's method: per intervention a copy of the model
           (copy.deepcopy), torch.svd_lowrank(W, q=k, niter=2), W <- U S V^T,
           the examples scored one at a time (batch size 1)
  careful  a careful transformers sweep: the model loaded once, one
           svd_lowrank per matrix to the largest k (laserd's oversampling,
           niter=2) reused for every rho, W edited in place and restored,
           examples scored in padded batches
The sweep plan is laserd's: mlp.down_proj ("mlp.out") of --sweep-matrices
layers spread evenly, the last included (7, 15, 23, 31 of 32), at every rho of
--rhos, k = max(1, floor(rho * min(m, n))).
The report is rewritten after every measurement (a time limit loses nothing
measured). --device cpu runs the same code on tiny shapes to rehearse it
without a GPU (its figures mean nothing about a GPU).

  torch_peer.py --sequences seq.json --out peer.json [--device cuda] [--budget 150]
"""
import argparse
import copy
import json
import math
import os
import statistics
import sys
import time


class Report:
    def __init__(self, path, budget):
        self.path, self.budget, self.start, self.data = path, budget, time.monotonic(), {}

    def set(self, key, value):
        self.data[key] = value
        self.data["seconds"] = time.monotonic() - self.start
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)

    def left(self):
        return self.budget - (time.monotonic() - self.start) if self.budget > 0 else 1e9


def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gemm_rate(torch, device, m, n, k, iters):
    a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
    b = torch.randn(k, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(torch, device)
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(torch, device)
    return 2.0 * m * n * k * iters / (time.perf_counter() - t)


def score(torch, model, examples, batch_size, device):
    """Sum of the answer tokens' log-probabilities per example (right-padded batches)."""
    out = []
    for at in range(0, len(examples), batch_size):
        chunk = examples[at:at + batch_size]
        width = max(len(e["tokens"]) for e in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for i, e in enumerate(chunk):
            ids[i, :len(e["tokens"])] = torch.tensor(e["tokens"])
            mask[i, :len(e["tokens"])] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for i, e in enumerate(chunk):
            s, n = e["answer_start"], len(e["tokens"])
            lp = torch.log_softmax(logits[i, s - 1:n - 1].float(), dim=-1)
            gold = torch.tensor(e["tokens"][s:n], device=lp.device)
            out.append(float(lp.gather(1, gold[:, None]).sum()))
    return out


def plan(shape, args):
    layers = shape["num_hidden_layers"]
    m, n = shape["hidden_size"], shape["intermediate_size"]
    ks = [max(1, math.floor(min(m, n) * r)) for r in args.rhos]
    stride = max(1, layers // max(1, args.sweep_matrices))
    chosen = sorted(layers - 1 - i * stride for i in range(args.sweep_matrices)
                    if layers - 1 - i * stride >= 0)
    return [(l, k) for l in chosen for k in ks]


def low_rank(torch, w, k, q, niter):
    u, s, v = torch.svd_lowrank(w.float(), q=q, niter=niter)
    return u, s, v


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget", type=float, default=0, help="seconds (0: no limit)")
    p.add_argument("--gemm-size", type=int, default=8192)
    p.add_argument("--sweep-matrices", type=int, default=4)
    p.add_argument("--rhos", type=lambda s: [float(x) for x in s.split(",")],
                   default=[0.01, 0.05, 0.1])
    p.add_argument("--paper-interventions", type=int, default=3)
    p.add_argument("--batch", type=int, default=64, help="careful sweep: sequences per batch")
    args = p.parse_args()
    r = Report(args.out, args.budget)
    r.set("section", "torch_peer")
    r.set("device", args.device)
    if args.device == "cpu":
        r.set("rehearsal", True)
    import torch
    import transformers
    r.set("versions", {"torch": torch.__version__, "transformers": transformers.__version__,
                       "python": sys.version.split()[0]})
    dev = args.device
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            r.set("skipped", "torch sees no CUDA device")
            r.set("ok", False)
            return 2
        r.set("gpu", torch.cuda.get_device_name(0))
    seqs = json.load(open(args.sequences))
    shape = seqs["shape"]
    d, f = shape["hidden_size"], shape["intermediate_size"]
    layer_flops = 2.0 * shape["num_hidden_layers"] * (4 * d * d + 3 * d * f)

    # GEMM ceiling.
    s = args.gemm_size
    tokens = sum(len(t) for t in seqs["forward"])
    r.set("gemm_bf16_tflops", {"square": gemm_rate(torch, dev, s, s, s, 20) / 1e12,
                               "mlp": gemm_rate(torch, dev, tokens, f, d, 50) / 1e12,
                               "shapes": {"square": [s, s, s], "mlp": [f, tokens, d]}})

    # The model: random weights made on the device, bf16.
    t = time.perf_counter()
    config = transformers.LlamaConfig(**{k: v for k, v in shape.items() if k != "architectures"})
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # made in bf16 directly, on the device
    with torch.device(dev):
        model = transformers.LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    model.eval()
    sync(torch, dev)
    r.set("load_seconds", time.perf_counter() - t)
    torch.set_grad_enabled(False)

    # Forward: the same batch as laserd's, the last positions' logits.
    ids = torch.tensor(seqs["forward"], device=dev)
    kept = seqs["forward_scored"]
    times = []
    for i in range(6):
        if i >= 2 and r.left() < 60:
            break
        t = time.perf_counter()
        logits = model(input_ids=ids, logits_to_keep=kept).logits
        torch.log_softmax(logits.float(), dim=-1)
        sync(torch, dev)
        if i > 0:
            times.append(time.perf_counter() - t)
    fwd = statistics.median(times)
    flops = tokens * layer_flops + 2.0 * len(seqs["forward"]) * kept * shape["vocab_size"] * d
    r.set("forward", {"sequences": len(seqs["forward"]), "tokens": tokens, "seconds": fwd,
                      "repetitions": len(times), "tokens_per_second": tokens / fwd,
                      "gemm_flops": flops, "gemm_tflops": flops / fwd / 1e12,
                      "attn_implementation": model.config._attn_implementation})

    examples = seqs["sweep"]
    interventions = plan(shape, args)
    r.set("plan", {"matrix": "mlp.down_proj", "layer_k": interventions, "examples": len(examples)})
    layers = model.model.layers

    # The paper's method: a model copy per intervention, batch size 1.
    def paper_one(layer, k):
        m2 = copy.deepcopy(model)
        w = m2.model.layers[layer].mlp.down_proj.weight
        u, s_, v = low_rank(torch, w, k, k, 2)
        w.copy_((u * s_) @ v.T)
        lp = [score(torch, m2, [e], 1, dev)[0] for e in examples]
        del m2
        sync(torch, dev)
        return lp

    done, total = 0, 0.0
    paper_one(*interventions[0])  # warm-up (untimed)
    for layer, k in interventions[:args.paper_interventions]:
        if r.left() < 45:
            break
        t = time.perf_counter()
        paper_one(layer, k)
        total += time.perf_counter() - t
        done += 1
        r.set("paper", {"interventions": done, "seconds": total, "examples": len(examples),
                        "interventions_per_minute": 60.0 * done / total,
                        "method": "deepcopy + svd_lowrank(q=k, niter=2) + batch size 1"})
    if done == 0:
        r.set("paper", {"skipped": "time budget spent"})

    # The careful sweep: one SVD per matrix, in-place edit and restore, padded batches.
    by_layer = {}
    for layer, k in interventions:
        by_layer.setdefault(layer, []).append(k)
    done, total, svd_s = 0, 0.0, 0.0
    for layer, ks in by_layer.items():
        if r.left() < 20:
            break
        t = time.perf_counter()
        w = layers[layer].mlp.down_proj.weight
        saved = w.detach().clone()
        k_max = max(ks)
        u, s_, v = low_rank(torch, w, k_max, min(min(w.shape), k_max + max(10, k_max // 2)), 2)
        sync(torch, dev)
        svd_s += time.perf_counter() - t
        for k in ks:
            w.copy_((u[:, :k] * s_[:k]) @ v[:, :k].T)
            score(torch, model, examples, args.batch, dev)
            w.copy_(saved)
            done += 1
        sync(torch, dev)
        total += time.perf_counter() - t
        r.set("careful", {"interventions": done, "seconds": total, "svd_seconds": svd_s,
                          "examples": len(examples), "batch": args.batch,
                          "interventions_per_minute": 60.0 * done / total,
                          "method": "one svd_lowrank per matrix (oversampled, niter=2), "
                                    "in-place edit and restore, padded batches"})
    if done == 0:
        r.set("careful", {"skipped": "time budget spent"})
    r.set("ok", True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
