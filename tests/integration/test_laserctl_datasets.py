"""`laserctl datasets delete` (alias `dataset delete`) and the Python client's
delete_dataset against a real `laserd serve` on loopback: a dataset a queued or running
job uses is refused (exit 3, FAILED_PRECONDITION naming the job), an unused one is
deleted (exit 0), an absent one is NOT_FOUND (exit 4). Skips when `laserd serve` does not
exist yet."""
import subprocess

import grpc
import pytest

from conftest import tiny_spec
from laserd_client import Client
from laserd_client.v1 import sweep_pb2


def ctl(laserctl, server, *args):
    return subprocess.run([str(laserctl), "--server", server, *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_laserctl_datasets_delete(server, laserctl_bin, tiny_data, tmp_path):
    data = tmp_path / "delete-me.jsonl"
    data.write_bytes(tiny_data.read_bytes() + b'{"prompt": "Delete", "answer": " me"}\n')
    r = ctl(laserctl_bin, server, "datasets", "upload", data)
    assert r.returncode == 0, r.stderr
    ds_id = r.stdout.strip()

    with Client(server) as c:
        spec = tiny_spec(tiny_data)
        spec["dataset"] = {"dataset_id": ds_id}
        spec["rho"] = {"values": [i / 100 for i in range(1, 101)]}
        job_id = c.submit(spec)
        # 100 ranks of every matrix: the job is still queued or running (seconds).
        r = ctl(laserctl_bin, server, "dataset", "delete", ds_id)
        assert c.get(job_id).state in (sweep_pb2.JOB_STATE_QUEUED, sweep_pb2.JOB_STATE_RUNNING)
        assert r.returncode == 3, r.stderr
        assert r.stderr == (f"laserctl: datasets delete {ds_id}: FAILED_PRECONDITION: "
                            f"dataset {ds_id} is used by 1 queued or running job(s): "
                            f"{job_id}; cancel or delete them first\n")
        c.cancel(job_id)
        assert c.wait(job_id).state == sweep_pb2.JOB_STATE_CANCELLED
        r = ctl(laserctl_bin, server, "datasets", "delete", ds_id)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"deleted {ds_id}\n"
        assert ds_id not in [d.id for d in c.list_datasets()]

        r = ctl(laserctl_bin, server, "datasets", "delete", ds_id)
        assert r.returncode == 4
        assert r.stderr == (f"laserctl: datasets delete {ds_id}: NOT_FOUND: "
                            f"dataset_id: no dataset '{ds_id}'\n")

        # The Python client: upload again, delete, and NOT_FOUND the second time.
        assert c.upload_dataset(str(data)).id == ds_id
        c.delete_dataset(ds_id)
        with pytest.raises(grpc.RpcError) as e:
            c.delete_dataset(ds_id)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
