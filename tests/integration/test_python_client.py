"""A sweep submitted with the Python client to a real `laserd serve` on loopback streams
every result once and in order, and equals the headless `laserd sweep` output for the
same spec. Skips when `laserd serve` does not exist yet."""
from conftest import comparable, headless_results, tiny_spec

from laserd_client import Client, flatten_result
from laserd_client.v1 import sweep_pb2


def test_python_client_streams_the_headless_results(server, laserd_bin, tiny_model, tiny_data,
                                                     tmp_path):
    spec = tiny_spec(tiny_data)
    header, expected = headless_results(laserd_bin, tiny_model, spec, tmp_path)
    assert len(expected) == header.progress.interventions_total > 0

    with Client(server) as c:
        job_id = c.submit(spec, request_id="python-client-it")
        assert c.submit(spec, request_id="python-client-it") == job_id  # idempotent retry
        got = list(c.results(job_id))
        assert [r.index for r in got] == list(range(len(expected)))  # each once, in order
        assert all(r.job_id == job_id for r in got)
        assert [comparable(r) for r in got] == [comparable(r) for r in expected]

        job = c.wait(job_id)
        assert job.state == sweep_pb2.JOB_STATE_SUCCEEDED
        assert job.result_count == len(expected)
        assert job.baseline == header.baseline

        # Resuming from the middle replays exactly the rest.
        half = len(expected) // 2
        assert [r.index for r in c.results(job_id, from_index=half)] == \
            list(range(half, len(expected)))

        assert c.rows(job_id) == [flatten_result(r) for r in expected]
