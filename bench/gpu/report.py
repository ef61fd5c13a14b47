#!/usr/bin/env python3
"""The device check's report (bench/gpu/check.sh), built with the json module.

  report.py step --file steps.jsonl --name NAME --rc RC --seconds S [key=value ...]
      appends one step's record
  report.py assemble --logs DIR --out report.json [--gpu NAME]
      reads the steps, the GPU tests' logs and every section's JSON and
      writes the report; exit status 0 when nothing failed

A step is passed (exit 0), skipped (gpu_bench's exit 2: it needs a GPU; or no
time left), timed_out (124/137) or failed. A GPU test binary passes when it
exits 0 and no test failed; when a GPU is visible, a CUDA test skipped for
want of a device is a failure ("GPU visible but the CUDA tests skipped").
"""
import argparse
import json
import os
import re
import sys
import time

GPU_STEPS = ("smoke", "gemm", "svd", "model", "smollm2", "torch_peer")
TEST_STEPS = ("cuda_backend_test", "cuda_model_test")
NO_DEVICE = ("no CUDA device", "built without CUDA")
END = re.compile(r"^\[(       OK |  FAILED  |  SKIPPED )\] (\S+)")
END_KINDS = {"       OK ": "passed", "  FAILED  ": "failed", "  SKIPPED ": "skipped"}


def finite(x):
    """x with every NaN or infinity replaced by None (JSON has neither)."""
    if isinstance(x, float):
        return x if x == x and abs(x) != float("inf") else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return x


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"unreadable": f"{os.path.basename(path)}: {e}"}


def tail(path, n=1500):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def parse_gtest(log):
    """Per-test outcomes from a gtest log, each test counted once."""
    tests, body, current = {}, [], None
    for line in log.splitlines():
        m = re.match(r"^\[ RUN      \] (\S+)", line)
        if m:
            current, body = m.group(1), []
            continue
        m = END.match(line)
        if m and m.group(2) == current:
            kind = END_KINDS[m.group(1)]
            text = "\n".join(body)
            if kind == "skipped":
                text = text.split("Skipped", 1)[-1].strip()
            tests[current] = {"result": kind, "message": text[-600:]}
            current = None
            continue
        if current:
            body.append(line)
    if current:  # the binary stopped inside a test (abort, timeout)
        message = ("did not finish: " + "\n".join(body))[-600:]
        tests[current] = {"result": "failed", "message": message}
    return tests


def summarize_tests(log_path, gpu_visible):
    tests = parse_gtest(open(log_path, errors="replace").read()) if os.path.exists(log_path) else {}
    out = {"passed": sorted(t for t, r in tests.items() if r["result"] == "passed"),
           "failed": {t: r["message"] for t, r in tests.items() if r["result"] == "failed"},
           "skipped": {t: r["message"] for t, r in tests.items() if r["result"] == "skipped"}}
    no_device = {t: m for t, m in out["skipped"].items() if any(k in m for k in NO_DEVICE)}
    problems = [f"{t}: {m.splitlines()[0] if m else ''}" for t, m in out["failed"].items()]
    if gpu_visible and no_device:
        problems.append("GPU visible but the CUDA tests skipped: " + next(iter(no_device.values())))
    return out, problems, bool(no_device)


def loaded_libraries(logs):
    """Every library the dynamic loader initialised in the smoke step (LD_DEBUG=libs)."""
    libs = set()
    for name in os.listdir(logs):
        if name.startswith("ld_debug"):
            for line in open(os.path.join(logs, name), errors="replace"):
                if "calling init:" in line:
                    libs.add(line.split("calling init:", 1)[1].strip())
    return sorted(libs)


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def comparison(s):
    model, peer, gemm = s.get("model", {}), s.get("torch_peer", {}), s.get("gemm", {})
    lz_flops = get(model, "forward", "gemm_tflops")
    c = {
        "forward_tokens_per_second": {"laserd": get(model, "forward", "tokens_per_second"),
                                      "transformers": get(peer, "forward", "tokens_per_second")},
        "forward_laserd_over_transformers": ratio(get(model, "forward", "tokens_per_second"),
                                                  get(peer, "forward", "tokens_per_second")),
        "forward_fraction_of_bf16_gemm_rate": {
            "cublas_square": ratio(lz_flops, get(gemm, "cublas_bf16_tflops", "square")),
            "torch_square": ratio(lz_flops, get(peer, "gemm_bf16_tflops", "square")),
            "transformers_torch_square": ratio(get(peer, "forward", "gemm_tflops"),
                                               get(peer, "gemm_bf16_tflops", "square"))},
        "sweep_interventions_per_minute": {
            "laserd": get(model, "sweep", "interventions_per_minute"),
            "paper_method": get(peer, "paper", "interventions_per_minute"),
            "careful_transformers": get(peer, "careful", "interventions_per_minute")},
    }
    c["sweep_over_paper"] = ratio(c["sweep_interventions_per_minute"]["laserd"],
                                  c["sweep_interventions_per_minute"]["paper_method"])
    c["sweep_over_careful"] = ratio(c["sweep_interventions_per_minute"]["laserd"],
                                    c["sweep_interventions_per_minute"]["careful_transformers"])
    def at_least(x, target):
        return None if x is None else x >= target

    c["targets"] = {
        "forward_at_least_half_bf16_rate": at_least(
            c["forward_fraction_of_bf16_gemm_rate"]["cublas_square"], 0.5),
        "sweep_100x_paper": at_least(c["sweep_over_paper"], 100),
        "sweep_5x_careful": at_least(c["sweep_over_careful"], 5)}
    return c


def assemble(args):
    steps = {}
    path = os.path.join(args.logs, "steps.jsonl")
    if os.path.exists(path):
        for line in open(path):
            rec = json.loads(line)
            steps[rec.pop("name")] = rec
    setup = steps.get("setup", {})
    gpu = args.gpu or setup.get("gpu", "none")
    gpu_visible = gpu not in ("", "none")
    failures, skipped = [], {}
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "gpu": gpu,
              "rehearsal": not gpu_visible, "setup": setup,
              "steps": {}, "tests": {}, "sections": {}}
    if setup.get("rc", 0) != 0:
        failures.append("setup: " + str(setup.get("error", "failed")))
    for name, rec in steps.items():
        if name == "setup":
            continue
        rc = rec.get("rc")
        section = None
        if name not in TEST_STEPS:
            section = read_json(os.path.join(args.logs, name + ".json"))
        if name in TEST_STEPS:
            tests, problems, no_device = summarize_tests(
                os.path.join(args.logs, name + ".log"), gpu_visible)
            report["tests"][name] = tests
            status = "passed" if rc == 0 and not problems else "skipped" if rc == -1 else (
                "timed_out" if rc in (124, 137) else "failed")
            if status != "skipped" and (rc != 0 or problems):
                failures += [f"{name}: exit {rc}"] * (rc != 0) + [f"{name}: {p}" for p in problems]
            if no_device and not gpu_visible:
                skipped[name] = "CUDA tests: " + next(iter(tests["skipped"].values()))
        else:
            report["sections"][name] = section
            reason = (section or {}).get("skipped")
            status = ("passed" if rc == 0 else "skipped" if rc in (-1, 2) else
                      "timed_out" if rc in (124, 137) else "failed")
            if rc == 2 and not reason:
                reason = (section or {}).get("error")
            if status == "skipped":
                skipped[name] = rec.get("skipped") or reason or "skipped"
                if gpu_visible and rc == 2:
                    failures.append(f"{name}: GPU visible but skipped: {skipped[name]}")
            elif status != "passed":
                failures.append(f"{name}: {status} (exit {rc}): " +
                                str((section or {}).get("error", "see its log")))
        entry = dict(rec, status=status)
        if status in ("failed", "timed_out"):
            entry["log_tail"] = tail(os.path.join(args.logs, rec.get("log", name + ".log")))
        report["steps"][name] = entry
    report["skipped"] = skipped
    report["stage"] = read_json(args.stage) if args.stage else None
    report["loader_libraries"] = loaded_libraries(args.logs)
    report["comparison"] = comparison(report["sections"])
    if not gpu_visible:
        report["comparison"]["note"] = ("rehearsal without a GPU: the CPU ran tiny shapes; "
                                        "these figures say nothing about a GPU")
    report["failures"] = failures
    report["ok"] = not failures
    report["seconds"] = sum(r.get("seconds", 0) for r in steps.values())
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(finite(report), f, indent=1, allow_nan=False, default=str)
    os.replace(tmp, args.out)
    return 0 if report["ok"] else 1


def step(args):
    rec = {"name": args.name, "rc": args.rc, "seconds": args.seconds}
    for kv in args.fields:
        k, _, v = kv.partition("=")
        rec[k] = v
    with open(args.file, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("step")
    s.add_argument("--file", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--rc", type=int, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("fields", nargs="*")
    a = sub.add_parser("assemble")
    a.add_argument("--logs", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--gpu", default="")
    a.add_argument("--stage", default="", help="the stage's stage.json")
    args = p.parse_args()
    return step(args) if args.cmd == "step" else assemble(args)


if __name__ == "__main__":
    sys.exit(main())
