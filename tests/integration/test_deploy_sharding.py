"""The sharded sweep of deploy/, run here for N = 3 on the CPU: the Kubernetes Indexed
Job's container (deploy/k8s/sweep-job.yaml) with JOB_COMPLETION_INDEX = 0, 1, 2 and then
the merge Job's, and the Slurm array script (deploy/slurm/laserd-sweep.sbatch) with
SLURM_ARRAY_TASK_ID = 0, 1, 2 and then the merge script. The commands are taken from the
files, not re-typed; the merged file must equal one unsharded `laserd sweep` of the same
spec byte for byte (the results file has no timing fields, docs/sweep.md).

The model is the real SmolLM2-135M-Instruct GGUF (scripts/fetch_model.sh) at the name the
manifests use; the spec is the ConfigMap's, with its dataset replaced by the ten examples
of conftest.DATA (the manifests' sweep, 36 interventions, on a small held-out set).
"""
import json
import os
import pathlib
import re
import subprocess

import pytest

from conftest import DATA, build_dir, missing
from deploy_helpers import K8S, REPO, SLURM, Pod, find, k8s_manifests

DEVICE = {"LASERD_DEVICE": "cpu"}  # the manifests ask for cuda; this machine has none


def model_file(name: str) -> pathlib.Path:
    d = pathlib.Path(os.environ.get("LASERD_DATA_DIR", REPO / ".data")) / "models"
    p = d / name
    if not p.exists():
        missing(f"{p} is missing (scripts/fetch_model.sh fetches it)")
    return p


@pytest.fixture(scope="module")
def laserd_dir(laserd_bin):
    return laserd_bin.parent


@pytest.fixture(scope="module")
def manifests():
    return k8s_manifests()


@pytest.fixture(scope="module")
def spec_text(manifests):
    return find(manifests["sweep-spec.yaml"], "ConfigMap", "laserd-sweep-spec")["data"]["spec.json"]


@pytest.fixture(scope="module")
def inputs(manifests, tmp_path_factory):
    """(the model the Job names, a dataset file of conftest.DATA)."""
    job = find(manifests["sweep-job.yaml"], "Job", "laserd-sweep")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    model = model_file(pathlib.PurePosixPath(env["LASERD_MODEL"]).name)
    data = tmp_path_factory.mktemp("data") / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in DATA))
    return model, data


def unsharded_run(laserd, model, spec, out) -> bytes:
    """One unsharded `laserd sweep` of the same spec file (the spec, dataset path
    included, is part of the sweep's id, so it must be the very file the shards read)."""
    r = subprocess.run([str(laserd), "sweep", "--model", str(model), "--spec", str(spec),
                        "--out", str(out), "--device", "cpu", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


def planned(results: bytes) -> int:
    return int(json.loads(results.splitlines()[0])["progress"]["interventions_total"])


def test_indexed_job_then_merge_job_equal_one_run(manifests, laserd_bin, laserd_dir, inputs,
                                                  tmp_path):
    model, data = inputs
    job = find(manifests["sweep-job.yaml"], "Job", "laserd-sweep")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    assert n == 3 and spec["parallelism"] == n
    pod = Pod(spec["template"]["spec"], "sweep", tmp_path / "pod",
              configmaps=manifests["sweep-spec.yaml"])
    assert pod.env()["LASERD_SHARDS"] == str(n), "--shards must equal completions"
    # The inputs volume as storage.yaml documents it: the model and the dataset.
    inputs_dir = pod.mounts["/inputs"]
    (inputs_dir / model.name).symlink_to(model)
    (inputs_dir / "capitals.jsonl").write_bytes(data.read_bytes())
    assert pod.env()["LASERD_MODEL"] == f"/inputs/{model.name}"

    for i in range(n):
        argv = pod.argv(DEVICE)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                           env=pod.process_env([laserd_dir], DEVICE,
                                               {"JOB_COMPLETION_INDEX": str(i)}))
        assert r.returncode == 0, f"index {i}: {argv}\n{r.stderr}"
    results = pod.mounts["/results"]
    shards = sorted(p.name for p in results.iterdir())
    assert shards == [f"shard-{i}.jsonl" for i in range(n)]
    full = unsharded_run(laserd_bin, inputs_dir / model.name, pod.mounts["/etc/laserd"] / "spec.json",
                         tmp_path / "full.jsonl")
    # Every shard has work, and no result is in two shards.
    counts = [len((results / s).read_bytes().splitlines()) - 1 for s in shards]
    assert all(c > 0 for c in counts) and sum(counts) == planned(full) == 36

    # The merge Job, on the same results volume.
    merge = find(manifests["merge-job.yaml"], "Job", "laserd-sweep-merge")
    mpod = Pod(merge["spec"]["template"]["spec"], "merge", tmp_path / "pod")
    assert mpod.mounts["/results"] == results
    r = subprocess.run(mpod.argv(), capture_output=True, text=True, timeout=120,
                       env=mpod.process_env([laserd_dir]))
    assert r.returncode == 0, r.stderr
    assert (results / "results.jsonl").read_bytes() == full


def test_indexed_job_retry_resumes_its_shard(manifests, laserd_dir, inputs, tmp_path):
    """A pod retried after a crash (backoffLimitPerIndex) finds a cut-off shard file and
    ends with the bytes an uninterrupted pod writes (--resume)."""
    model, data = inputs
    job = find(manifests["sweep-job.yaml"], "Job", "laserd-sweep")
    pod = Pod(job["spec"]["template"]["spec"], "sweep", tmp_path / "pod",
              configmaps=manifests["sweep-spec.yaml"])
    (pod.mounts["/inputs"] / model.name).symlink_to(model)
    (pod.mounts["/inputs"] / "capitals.jsonl").write_bytes(data.read_bytes())
    env = pod.process_env([laserd_dir], DEVICE, {"JOB_COMPLETION_INDEX": "1"})
    r = subprocess.run(pod.argv(DEVICE), capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    out = pod.mounts["/results"] / "shard-1.jsonl"
    whole = out.read_bytes()
    lines = whole.splitlines(keepends=True)
    assert len(lines) >= 4
    out.write_bytes(b"".join(lines[:2]) + lines[2][:25])  # two whole lines and a torn one
    r = subprocess.run(pod.argv(DEVICE), capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == whole


def sbatch_array(script: pathlib.Path) -> range:
    m = re.search(r"^#SBATCH --array=(\d+)-(\d+)\s*$", script.read_text(), re.M)
    assert m, f"{script} has no '#SBATCH --array=A-B' line"
    return range(int(m.group(1)), int(m.group(2)) + 1)


def test_slurm_array_then_merge_equal_one_run(laserd_bin, laserd_dir, inputs, spec_text,
                                              tmp_path):
    model, data = inputs
    sweep = SLURM / "laserd-sweep.sbatch"
    tasks = sbatch_array(sweep)
    assert tasks == range(0, 3)
    spec = json.loads(spec_text)
    spec["dataset"]["path"] = str(data)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    results = tmp_path / "results"
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "JOB_COMPLETION_INDEX"))}
    base.update(PATH=f"{laserd_dir}{os.pathsep}{os.environ['PATH']}", LASERD_MODEL=str(model),
                LASERD_SPEC=str(tmp_path / "spec.json"), LASERD_RESULTS=str(results), **DEVICE)
    for i in tasks:
        # What Slurm sets in an array task (sbatch runs the script with bash, its shebang).
        env = dict(base, SLURM_ARRAY_TASK_ID=str(i), SLURM_ARRAY_TASK_COUNT=str(len(tasks)),
                   SLURM_ARRAY_TASK_MIN=str(tasks[0]), SLURM_ARRAY_TASK_MAX=str(tasks[-1]),
                   SLURM_ARRAY_JOB_ID="4242", SLURM_JOB_ID=str(4243 + i))
        r = subprocess.run(["bash", str(sweep)], capture_output=True, text=True, timeout=300,
                           env=env, cwd=tmp_path)
        assert r.returncode == 0, f"task {i}: {r.stdout}\n{r.stderr}"
        assert f"shard {i} of {len(tasks)}" in r.stdout
    assert sorted(p.name for p in results.iterdir()) == [f"shard-{i}.jsonl" for i in tasks]
    full = unsharded_run(laserd_bin, model, tmp_path / "spec.json", tmp_path / "full.jsonl")
    assert sum(len(p.read_bytes().splitlines()) - 1 for p in results.iterdir()) == \
        planned(full) == 36
    r = subprocess.run(["bash", str(SLURM / "laserd-merge.sbatch")], capture_output=True,
                       text=True, timeout=120, env=dict(base, SLURM_JOB_ID="4300"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (results / "results.jsonl").read_bytes() == full


def test_slurm_script_outside_an_array_refuses(laserd_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(LASERD_MODEL="m.gguf", LASERD_SPEC="s.json")
    r = subprocess.run(["bash", str(SLURM / "laserd-sweep.sbatch")], capture_output=True,
                       text=True, env=env, cwd=tmp_path)
    assert r.returncode != 0
    assert "not a Slurm array task" in r.stderr
    assert not (tmp_path / "results").exists()
