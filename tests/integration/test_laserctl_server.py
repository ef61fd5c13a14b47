"""laserctl against a real `laserd serve` on loopback: a sweep submitted and watched with
laserctl streams every result once and in order and equals the headless `laserd sweep`
output; results/get/cancel give the documented output and exit codes. Skips when
`laserd serve` does not exist yet."""
import csv
import io
import json
import subprocess

from google.protobuf import json_format

from conftest import comparable, headless_results, tiny_spec
from laserd_client.v1 import sweep_pb2


def ctl(laserctl, server, *args):
    return subprocess.run([str(laserctl), "--server", server, *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_laserctl_submit_watch_equals_headless(server, laserctl_bin, laserd_bin, tiny_model,
                                               tiny_data, tmp_path):
    spec = tiny_spec(tiny_data)
    header, expected = headless_results(laserd_bin, tiny_model, spec, tmp_path)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))

    r = ctl(laserctl_bin, server, "submit", "--spec", spec_file, "--label", "it=laserctl",
            "--watch", "--format", "json", "--quiet")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    job_id = lines[0]
    got = [json_format.Parse(l, sweep_pb2.Result()) for l in lines[1:]]
    assert [g.index for g in got] == list(range(len(expected)))
    assert [comparable(g) for g in got] == [comparable(e) for e in expected]

    # A second watch of the finished job replays everything, then exits 0.
    r = ctl(laserctl_bin, server, "watch", job_id, "--format", "json", "--quiet", "--from", 3)
    assert r.returncode == 0, r.stderr
    # protobuf JSON writes int64 as strings and omits zeros: parse as messages.
    assert [json_format.Parse(l, sweep_pb2.Result()).index for l in r.stdout.splitlines()] == \
        list(range(3, len(expected)))

    r = ctl(laserctl_bin, server, "results", job_id, "--format", "csv", "--page-size", 7)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [int(x["index"]) for x in rows] == list(range(len(expected)))

    r = ctl(laserctl_bin, server, "results", job_id, "--format", "json",
            "--order-by", "validation.accuracy desc, validation.log_loss")
    accs = [json_format.Parse(l, sweep_pb2.Result()).metrics.validation.accuracy
            for l in r.stdout.splitlines()]
    assert accs == sorted(accs, reverse=True) and len(accs) == len(expected)

    r = ctl(laserctl_bin, server, "list", "--label", "it=laserctl", "--state", "succeeded")
    assert r.returncode == 0 and job_id in r.stdout

    assert ctl(laserctl_bin, server, "get", "no-such-job").returncode == 4
    assert ctl(laserctl_bin, server, "cancel", job_id).returncode == 3  # terminal job
    bad = ctl(laserctl_bin, server, "submit", "--spec", spec_file, "--rho", "1.5")
    assert bad.returncode == 3 and "rho" in bad.stderr
    assert ctl(laserctl_bin, server, "delete", job_id).returncode == 0
    assert ctl(laserctl_bin, server, "get", job_id).returncode == 4


def test_failed_lists_print_nothing_on_stdout(server, laserctl_bin):
    """A list whose RPC fails prints nothing on stdout (no header, no partial list), only
    the error on stderr: the server refusing the request, or no server at all."""
    r = ctl(laserctl_bin, server, "list", "--page-token", "not-a-token")
    assert r.returncode == 3, r.stderr
    assert r.stdout == ""
    assert "page_token: 'not-a-token' is not a token this server issued" in r.stderr
    from conftest import free_port
    nowhere = f"127.0.0.1:{free_port()}"
    for args in (["list"], ["list", "--json"], ["list", "--all"], ["datasets", "list"],
                 ["datasets", "list", "--json"]):
        r = ctl(laserctl_bin, nowhere, *args)
        assert r.returncode == 6, (args, r.stderr)
        assert r.stdout == "", args
        assert "UNAVAILABLE" in r.stderr, args
    # The same lists succeed against the server, header first.
    r = ctl(laserctl_bin, server, "list")
    assert r.returncode == 0 and r.stdout.split()[:2] == ["id", "state"], r.stderr
    r = ctl(laserctl_bin, server, "datasets", "list")
    assert r.returncode == 0 and r.stdout.split()[:2] == ["id", "bytes"], r.stderr
