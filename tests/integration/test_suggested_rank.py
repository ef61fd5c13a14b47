"""add_suggested_rank through the server's job path: a sweep submitted with
`laserctl submit --add-suggested-rank` to a real `laserd serve` is accepted, streams
one extra result per matrix with rank_source SUGGESTED, equals the headless
`laserd sweep` output for the same spec, and each suggested rank equals the
`suggested_rank` that ModelService.GetSpectrum gives for that matrix (one
implementation, engine/laser/spectrum.h). Skips when `laserd serve` does not exist."""
import json
import subprocess

from google.protobuf import json_format

from conftest import comparable, headless_results, tiny_spec
from laserd_client import Client
from laserd_client.v1 import sweep_pb2


def test_submit_with_suggested_rank_equals_headless_and_get_spectrum(
        server, laserctl_bin, laserd_bin, tiny_model, tiny_data, tmp_path):
    spec = tiny_spec(tiny_data)
    spec["rho"] = {"values": [0.05, 0.3]}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))

    r = subprocess.run([str(laserctl_bin), "--server", server, "submit", "--spec",
                        str(spec_file), "--add-suggested-rank", "--watch", "--format", "json",
                        "--quiet"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    got = [json_format.Parse(l, sweep_pb2.Result()) for l in lines[1:]]

    headless = dict(spec, add_suggested_rank=True)
    header, expected = headless_results(laserd_bin, tiny_model, headless, tmp_path)
    assert header.progress.interventions_total == 14 * 3  # 2 layers x 7 types x (2 + 1)
    assert len(got) == len(expected) == 14 * 3
    assert [comparable(g) for g in got] == [comparable(e) for e in expected]

    sources = [g.intervention.rank_source for g in got]
    assert sources.count(sweep_pb2.RANK_SOURCE_SUGGESTED) == 14
    with Client(server) as c:
        job = c.get(lines[0])
        assert job.spec.add_suggested_rank
        assert job.state == sweep_pb2.JOB_STATE_SUCCEEDED
        for g in got:
            iv = g.intervention
            if iv.rank_source != sweep_pb2.RANK_SOURCE_SUGGESTED:
                assert iv.rank_source == sweep_pb2.RANK_SOURCE_RHO
                continue
            assert g.plan_index % 3 == 2  # last of its matrix
            mp = c.spectrum(iv.matrix_type, iv.layer).marchenko_pastur
            assert iv.rank == mp.suggested_rank, (iv.matrix_type, iv.layer)
            assert iv.rho == mp.suggested_rho
            assert abs(iv.relative_error - mp.relative_error) <= 1e-6

        # Suggested ranks alone (no rho/rate) are accepted too.
        alone = {k: v for k, v in spec.items() if k != "rho"}
        alone["add_suggested_rank"] = True
        alone["matrix_types"] = ["attn.o"]
        job_id = c.submit(alone)
        done = c.wait(job_id)
        assert done.state == sweep_pb2.JOB_STATE_SUCCEEDED, done.error
        res = list(c.results(job_id))
        assert [x.intervention.rank_source for x in res] == [sweep_pb2.RANK_SOURCE_SUGGESTED] * 2
