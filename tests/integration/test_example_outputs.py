"""Per-example outputs and significance end to end: the headless `laserd sweep` with
keep_example_outputs writes an example outputs file beside its results; a served job of
the same spec holds the same outputs (ListExampleOutputs, the Python client, `laserctl
outputs`); every significance the sweep stored or the server computes equals a
recomputation here from those outputs (McNemar with exact integer binomials, the
bootstrap with a Python SplitMix64), and a job that did not keep its outputs answers
GetSignificance only for the results that carry one. Skips when `laserd serve` does not
exist yet."""
import json
import math
import subprocess

import grpc
import pytest
from google.protobuf import json_format

from conftest import tiny_spec
from laserd_client import Client
from laserd_client.v1 import sweep_pb2

M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.x = seed & M64

    def next(self):
        self.x = (self.x + 0x9E3779B97F4A7C15) & M64
        z = self.x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n):
        return (self.next() * n) >> 64


def mcnemar(b, c):
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def quantile(xs, q):
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    if lo + 1 >= len(xs):
        return xs[-1]
    return xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo])


def split_test(base, edited, seed, resamples=10000, confidence=0.95):
    n = len(base)
    loss = lambda o: -o.answer_logprob / o.answer_tokens
    da = [(100.0 if e.correct else 0.0) - (100.0 if b.correct else 0.0)
          for b, e in zip(base, edited)]
    dl = [loss(e) - loss(b) for b, e in zip(base, edited)]
    b_ = sum(1 for b, e in zip(base, edited) if not b.correct and e.correct)
    c_ = sum(1 for b, e in zip(base, edited) if b.correct and not e.correct)
    rng = SplitMix64(seed)
    accs, losses = [], []
    for _ in range(resamples):
        a = l = 0.0
        for _ in range(n):
            j = rng.below(n)
            a += da[j]
            l += dl[j]
        accs.append(a / n)
        losses.append(l / n)
    accs.sort()
    losses.sort()
    lo, hi = (1 - confidence) / 2, (1 + confidence) / 2
    return dict(examples=n, improved=b_, worsened=c_, p_value=mcnemar(b_, c_),
                accuracy_delta=sum(da) / n, log_loss_delta=sum(dl) / n,
                accuracy_ci_low=quantile(accs, lo), accuracy_ci_high=quantile(accs, hi),
                log_loss_ci_low=quantile(losses, lo), log_loss_ci_high=quantile(losses, hi))


def check_significance(sig, base, edited):
    assert sig.alpha == 0.05 and sig.confidence == 0.95
    assert sig.bootstrap_resamples == 10000 and sig.bootstrap_seed == 1
    assert sig.result_index == edited.result_index
    for name, split, seed in (("validation", sweep_pb2.EXAMPLE_SPLIT_VALIDATION, 1),
                              ("test", sweep_pb2.EXAMPLE_SPLIT_TEST, 2)):
        got = getattr(sig, name)
        want = split_test([o for o in base.examples if o.split == split],
                          [o for o in edited.examples if o.split == split], seed)
        assert got.examples == want["examples"]
        assert got.improved == want["improved"] and got.worsened == want["worsened"]
        assert got.significant == (want["p_value"] < 0.05)
        for k, v in want.items():
            assert getattr(got, k) == pytest.approx(v, rel=1e-12, abs=1e-12), (name, k)


def keep_spec(data):
    spec = tiny_spec(data)
    spec["keep_example_outputs"] = True
    spec["composition"] = {"mode": "COMPOSITION_MODE_GREEDY", "max_interventions": 3}
    return spec


def headless(laserd, model, spec, tmp_path, name):
    spec_file = tmp_path / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / f"{name}.jsonl"
    r = subprocess.run([str(laserd), "sweep", "--model", str(model), "--spec", str(spec_file),
                        "--out", str(out), "--device", "cpu", "--no-progress"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def parse_outputs(text):
    return [json_format.Parse(l, sweep_pb2.ExampleOutputs()) for l in text.splitlines()]


def test_headless_example_outputs_file_and_significance(laserd_bin, tiny_model, tiny_data,
                                                        tmp_path):
    out, stdout = headless(laserd_bin, tiny_model, keep_spec(tiny_data), tmp_path, "keep")
    lines = out.read_text().splitlines()
    header = json_format.Parse(lines[0], sweep_pb2.Job())
    results = [json_format.Parse(l, sweep_pb2.Result()) for l in lines[1:]]
    examples_file = tmp_path / "keep.examples.jsonl"
    outputs = parse_outputs(examples_file.read_text())
    # The baseline's line, then one per result, in index order.
    assert [o.result_index for o in outputs] == [-1] + [r.index for r in results]
    assert [o.plan_index for o in outputs] == [-1] + [r.plan_index for r in results]
    assert all(o.job_id == header.id for o in outputs)
    for o, ev in zip(outputs, [header.baseline] + [r.metrics for r in results]):
        assert [e.index for e in o.examples] == list(range(10))
        val = [e for e in o.examples if e.split == sweep_pb2.EXAMPLE_SPLIT_VALIDATION]
        test = [e for e in o.examples if e.split == sweep_pb2.EXAMPLE_SPLIT_TEST]
        assert len(val) == ev.validation.examples == 3 and len(test) == ev.test.examples == 7
        assert sum(e.correct for e in val) == ev.validation.correct
        assert sum(e.correct for e in test) == ev.test.correct
        # Log-loss is the mean of -logprob / tokens.
        assert ev.test.log_loss == pytest.approx(
            sum(-e.answer_logprob / e.answer_tokens for e in test) / 7, rel=1e-9)
        # Choice records (lines 3 and 5) say which choice won; completions do not.
        assert [e.HasField("chosen") for e in o.examples] == [i in (3, 5) for i in range(10)]
        assert all(e.generated_text == "" for e in o.examples)
    tested = [r for r in results if r.HasField("significance")]
    assert any(r.kind == sweep_pb2.RESULT_KIND_COMPOSITION for r in tested)
    for r in tested:
        check_significance(r.significance, outputs[0], outputs[r.index + 1])
    assert "[sig" in stdout or "[n.s.]" in stdout  # the summary shows the best's marker

    # Without keep_example_outputs: no outputs file, the same results.
    plain = keep_spec(tiny_data)
    del plain["keep_example_outputs"]
    out2, _ = headless(laserd_bin, tiny_model, plain, tmp_path, "plain")
    assert not (tmp_path / "plain.examples.jsonl").exists()
    got = [json_format.Parse(l, sweep_pb2.Result()) for l in out2.read_text().splitlines()[1:]]
    for g in got:  # the spec differs, so does the sweep id
        g.job_id = results[0].job_id
    assert got == results

    # --resume after a cut: both files are cut back consistently and completed.
    full_results, full_outputs = out.read_text(), examples_file.read_text()
    out.write_text("".join(l + "\n" for l in lines[:4]))
    examples_file.write_text("".join(l + "\n" for l in full_outputs.splitlines()[:6]))
    spec_file = tmp_path / "keep.json"
    r = subprocess.run([str(laserd_bin), "sweep", "--model", str(tiny_model), "--spec",
                        str(spec_file), "--out", str(out), "--device", "cpu", "--no-progress",
                        "--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == full_results
    assert examples_file.read_text() == full_outputs


def test_served_example_outputs_and_significance(server, laserd_bin, laserctl_bin, tiny_model,
                                                 tiny_data, tmp_path):
    spec = keep_spec(tiny_data)
    _, _ = headless(laserd_bin, tiny_model, spec, tmp_path, "ref")
    ref = parse_outputs((tmp_path / "ref.examples.jsonl").read_text())
    with Client(server) as c:
        job_id = c.submit(spec)
        job = c.wait(job_id)
        assert job.state == sweep_pb2.JOB_STATE_SUCCEEDED
        got = list(c.example_outputs(job_id, page_size=3))
        assert len(got) == job.result_count + 1
        for g, w in zip(got, ref):
            assert g.job_id == job_id
            same = sweep_pb2.ExampleOutputs()
            same.CopyFrom(g)
            same.job_id = w.job_id
            assert same == w
        assert list(c.example_outputs(job_id, result_index=-1)) == [got[0]]
        assert list(c.example_outputs(job_id, result_index=2)) == [got[3]]
        # The best single carries its significance; any result can be tested.
        assert job.progress.best.HasField("significance")
        assert c.significance(job_id) == job.progress.best.significance
        check_significance(job.progress.best.significance, got[0],
                           got[job.progress.best.index + 1])
        for i in range(job.result_count):
            check_significance(c.significance(job_id, i), got[0], got[i + 1])
        with pytest.raises(grpc.RpcError) as e:
            c.significance(job_id, job.result_count)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND

    ctl = lambda *a: subprocess.run([str(laserctl_bin), "--server", server, *map(str, a)],
                                    capture_output=True, text=True, timeout=600)
    r = ctl("outputs", job_id, "--out", tmp_path / "ctl.jsonl", "--page-size", 2)
    assert r.returncode == 0, r.stderr
    assert parse_outputs((tmp_path / "ctl.jsonl").read_text()) == got
    r = ctl("outputs", job_id, "--result", -1)
    assert r.returncode == 0, r.stderr
    assert parse_outputs(r.stdout) == [got[0]]
    r = ctl("significance", job_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"result {job.progress.best.index}: [")
    assert "alpha 0.05, 95% CI: validation acc" in r.stdout
    r = ctl("significance", job_id, "--result", 1, "--json")
    assert r.returncode == 0, r.stderr
    assert json_format.Parse(r.stdout, sweep_pb2.Significance()).result_index == 1
    r = ctl("get", job_id)
    assert r.returncode == 0, r.stderr
    best_line = next(l for l in r.stdout.splitlines() if l.startswith("best:"))
    assert best_line.endswith("]")  # "[sig ...]" or "[n.s.]"


def test_served_job_without_outputs_keeps_the_baseline_only(server, tiny_data):
    spec = tiny_spec(tiny_data)
    with Client(server) as c:
        job_id = c.submit(spec)
        job = c.wait(job_id)
        outs = list(c.example_outputs(job_id))
        assert [o.result_index for o in outs] == [-1]
        best = job.progress.best
        assert c.significance(job_id) == best.significance
        # Result 0 was the best when committed, so it carries its significance.
        assert c.list_results(job_id)[0].HasField("significance")
        others = [r.index for r in c.list_results(job_id) if not r.HasField("significance")]
        assert others
        with pytest.raises(grpc.RpcError) as e:
            c.significance(job_id, others[0])
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "keep_example_outputs" in e.value.details()
