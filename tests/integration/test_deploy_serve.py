"""The Helm chart's laserd Deployment run here: its container's command (rendered by
Helm, with the chart's token Secret projected as Kubernetes would) on the tiny model,
then what the cluster does to it: the readiness probe's gRPC health check, the
container's HEALTHCHECK command from the Dockerfile, a Prometheus scrape at the
annotated port and path, and a client with and without a token.

Two things differ from a pod, both on purpose: the listen addresses 0.0.0.0 become
127.0.0.1 (tests talk to loopback only) and the ports are free ones (set as values).
"""
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import free_port, require_subcommands, started, wait_ready
from deploy_helpers import REPO, Pod, find, render_chart

TOKENS = "s3cret-write write ci\nr3ad-only read dashboard\n"


def healthcheck_argv():
    """The Dockerfile's HEALTHCHECK command, with the image's paths mapped to this
    checkout and this Python (the image's venv has the same packages)."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    argv = json.loads(re.search(r"^HEALTHCHECK .* CMD (\[.*\])$", text, re.M).group(1))
    assert argv[1] == "/opt/laserd/bin/laserd-healthcheck"
    return [sys.executable, str(REPO / "deploy" / "docker" / "laserd-healthcheck")] + argv[2:]


@pytest.fixture(scope="module")
def deployed(laserd_bin, tiny_model, tmp_path_factory):
    pytest.importorskip("grpc_health.v1.health_pb2",
                        reason="grpcio-health-checking is not installed (scripts/setup.sh)")
    require_subcommands(laserd_bin, "serve")
    grpc_port, http_port = free_port(), free_port()
    values = {"model": {"file": "tiny", "tokenizer": "tiny/tokenizer.json"}, "device": "cpu",
              "ports": {"grpc": grpc_port, "http": http_port},
              "auth": {"enabled": True, "tokens": TOKENS},
              "state": {"persistence": {"enabled": False}}}
    docs = [d for ds in render_chart(values).values() for d in ds]
    dep = find(docs, "Deployment")
    root = tmp_path_factory.mktemp("pod")
    pod = Pod(dep["spec"]["template"]["spec"], "laserd", root,
              secrets=[d for d in docs if d["kind"] == "Secret"])
    shutil.copytree(tiny_model, pod.mounts["/models"] / "tiny")
    argv = [a.replace("0.0.0.0:", "127.0.0.1:") for a in pod.argv()]
    assert argv[0] == "laserd"
    with started(argv, root / "laserd.log", env=pod.process_env([laserd_bin.parent])) as proc:
        yield {"dep": dep, "pod": pod, "proc": proc, "grpc": grpc_port, "http": http_port,
               "log": root / "laserd.log"}


def passing(argv, env=None):
    """A readiness check for wait_ready: the completed `argv` when it exits 0, else None."""
    def check():
        r = subprocess.run(argv, capture_output=True, text=True, env=env)
        return r if r.returncode == 0 else None
    return check


def wait_healthy(d, timeout=60):
    """Runs the Dockerfile's HEALTHCHECK until it passes, as Docker would."""
    env = {"LASERD_HEALTH_TARGET": f"127.0.0.1:{d['grpc']}", "PATH": "/usr/bin:/bin"}
    return wait_ready(d["proc"], d["log"], passing(healthcheck_argv(), env), timeout=timeout,
                      interval=0.3, what="laserd (not healthy)")


def test_healthcheck_passes_once_the_model_is_resident(deployed):
    r = wait_healthy(deployed)
    assert "SERVING" in r.stdout
    assert "model resident" in deployed["log"].read_text()


def test_readiness_probe_is_answered_serving(deployed):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    wait_healthy(deployed)
    probe = deployed["dep"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["grpc"]["port"] == deployed["grpc"]
    # What the kubelet sends: Health/Check for the probe's service, no credentials.
    with grpc.insecure_channel(f"127.0.0.1:{probe['grpc']['port']}") as ch:
        r = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=probe["grpc"]["service"]), timeout=5)
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_prometheus_scrapes_the_annotated_endpoint(deployed):
    wait_healthy(deployed)
    ann = deployed["dep"]["spec"]["template"]["metadata"]["annotations"]
    url = f"http://127.0.0.1:{ann['prometheus.io/port']}{ann['prometheus.io/path']}"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        body = r.read().decode()
    assert re.search(r"^laserd_up 1$", body, re.M), body[:500]


def test_tokens_from_the_secret_are_enforced(deployed):
    import grpc
    from laserd_client.v1 import sweep_pb2, sweep_pb2_grpc

    wait_healthy(deployed)
    with grpc.insecure_channel(f"127.0.0.1:{deployed['grpc']}") as ch:
        stub = sweep_pb2_grpc.SweepServiceStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.ListJobs(sweep_pb2.ListJobsRequest(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        r = stub.ListJobs(sweep_pb2.ListJobsRequest(), timeout=5,
                          metadata=[("authorization", "Bearer r3ad-only")])
        assert list(r.jobs) == []
    # Named by its name, never by its value, in the log.
    assert "r3ad-only" not in deployed["log"].read_text()


def test_healthcheck_fails_without_a_server(tmp_path):
    pytest.importorskip("grpc_health.v1.health_pb2")
    port = free_port()
    env = {"LASERD_HEALTH_TARGET": f"127.0.0.1:{port}", "LASERD_HEALTH_TIMEOUT": "2",
           "PATH": "/usr/bin:/bin"}
    t0 = time.monotonic()
    r = subprocess.run(healthcheck_argv(), capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 1
    assert "UNAVAILABLE" in r.stderr or "DEADLINE_EXCEEDED" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 10


def test_healthcheck_fails_for_an_unknown_service(deployed):
    wait_healthy(deployed)
    r = subprocess.run(healthcheck_argv() + ["--service", "no.such.Service"],
                       capture_output=True, text=True,
                       env={"LASERD_HEALTH_TARGET": f"127.0.0.1:{deployed['grpc']}"})
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr, r.stderr


def make_certs(d):
    """A CA and a certificate for laserd.example signed by it, usable by a server and a
    client (the chart's mTLS probes present the server's certificate)."""
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl is not installed (scripts/setup.sh installs it)")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run([openssl, *a], cwd=d, check=True, capture_output=True)
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=laserd test CA")
    run("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=laserd.example")
    (d / "ext.cnf").write_text("subjectAltName=DNS:laserd.example\n"
                               "extendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "tls.crt", "-days", "2", "-extfile", "ext.cnf")
    import base64
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "laserd-tls"},
            "data": {k: base64.b64encode((d / k).read_bytes()).decode()
                     for k in ("tls.crt", "tls.key", "ca.crt")}}


def test_tls_probe_runs_the_healthcheck_over_mtls(laserd_bin, tiny_model, tmp_path):
    """With tls.enabled and clientCA the chart's probes exec laserd-healthcheck over
    mTLS (Kubernetes' native gRPC probes cannot): run that probe command against the
    chart's laserd command with a kubernetes.io/tls Secret projected."""
    pytest.importorskip("grpc_health.v1.health_pb2")
    secret = make_certs(tmp_path)
    grpc_port = free_port()
    values = {"model": {"file": "tiny", "tokenizer": "tiny/tokenizer.json"}, "device": "cpu",
              "ports": {"grpc": grpc_port, "http": free_port()},
              "tls": {"enabled": True, "secretName": "laserd-tls", "clientCA": True,
                      "serverName": "laserd.example"},
              "state": {"persistence": {"enabled": False}}}
    docs = [d for ds in render_chart(values).values() for d in ds]
    dep = find(docs, "Deployment")
    pod = Pod(dep["spec"]["template"]["spec"], "laserd", tmp_path / "pod", secrets=[secret])
    shutil.copytree(tiny_model, pod.mounts["/models"] / "tiny")
    argv = [a.replace("0.0.0.0:", "127.0.0.1:") for a in pod.argv()]
    probe = dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
    assert probe[:2] == ["/opt/laserd/venv/bin/python3", "/opt/laserd/bin/laserd-healthcheck"]
    probe = [sys.executable, str(REPO / "deploy" / "docker" / "laserd-healthcheck")] + \
        [pod.map_paths(a) for a in probe[2:]]
    log = tmp_path / "laserd.log"
    with started(argv, log, env=pod.process_env([laserd_bin.parent])) as proc:
        r = wait_ready(proc, log, passing(probe), interval=0.3, what="laserd (probe failing)")
        assert "SERVING" in r.stdout
        # Plaintext (what a native gRPC probe sends) does not get an answer.
        plain = [sys.executable, probe[1], "--target", f"127.0.0.1:{grpc_port}",
                 "--timeout", "2"]
        assert subprocess.run(plain, capture_output=True, text=True).returncode == 1
        # Without the client certificate the mTLS handshake fails.
        no_cert = probe[:probe.index("--tls-cert")] + ["--timeout", "2"]
        assert subprocess.run(no_cert, capture_output=True, text=True).returncode == 1
