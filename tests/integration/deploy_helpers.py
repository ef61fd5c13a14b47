"""What the deploy tests share: loading the manifests, rendering the Helm chart, and
turning a container of a manifest into a command that runs here.

A container runs here as Kubernetes would run it, with two mappings and nothing
re-typed: every volume's mountPath is mapped to a local directory (in arguments and in
the files projected from ConfigMaps and Secrets, e.g. a spec's dataset path), and
`$(VAR)` references are expanded from the container's env as the kubelet does.
"""
import base64
import os
import pathlib
import re

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
CHART = DEPLOY / "helm" / "laserd"
SLURM = DEPLOY / "slurm"

# Kubernetes versions the manifests are validated against: the oldest that has
# everything they use (gRPC probes GA 1.27, Job backoffLimitPerIndex on by default
# 1.29) and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.29.0", "1.37.0")


def load_docs(text: str):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def k8s_manifests():
    """{file name: [documents]} for every YAML file under deploy/k8s."""
    return {p.name: load_docs(p.read_text()) for p in sorted(K8S.glob("*.yaml"))}


def find(docs, kind, name=None):
    hits = [d for d in docs if d["kind"] == kind and (name is None or
                                                     d["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def render_chart(values: dict, release: str = "laserd"):
    """The chart rendered by Helm's own engine (the Go SDK inside helm-python-sdk):
    {template path: [documents]}. Skips when the package is missing."""
    import pytest
    helm = pytest.importorskip(
        "helm_python", reason="helm-python-sdk (Helm's Go SDK) is not installed: "
        "scripts/setup.sh installs it")
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=release, namespace="laserd-test")
    return {k: load_docs(v) for k, v in out.items() if k.endswith(".yaml")}


def expand_k8s_vars(s: str, env: dict) -> str:
    """Kubernetes' expansion of command/args: $(VAR) becomes VAR's value when VAR is in
    the container's env (else stays as written); $$ is a literal $."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), s)


class Pod:
    """One container of a pod spec, runnable on this machine."""

    def __init__(self, pod_spec: dict, container: str, root: pathlib.Path,
                 configmaps=(), secrets=()):
        self.spec = pod_spec
        self.container = next(c for c in pod_spec["containers"] if c["name"] == container)
        self.root = root
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        # mountPath -> local directory, longest first so that /a/b wins over /a.
        self.mounts = {}
        for m in self.container.get("volumeMounts", []):
            local = root / m["name"]
            local.mkdir(parents=True, exist_ok=True)
            self.mounts[m["mountPath"]] = local
        self.mounts = dict(sorted(self.mounts.items(), key=lambda kv: -len(kv[0])))
        cms = {c["metadata"]["name"]: c for c in configmaps}
        secs = {s["metadata"]["name"]: s for s in secrets}
        for m in self.container.get("volumeMounts", []):
            v = volumes[m["name"]]
            local = root / m["name"]
            if "configMap" in v:
                data = cms[v["configMap"]["name"]]["data"]
                for key, text in data.items():
                    (local / key).write_text(self.map_paths(text))
            elif "secret" in v:
                s = secs[v["secret"]["secretName"]]
                items = v["secret"].get("items") or [{"key": k, "path": k} for k in s["data"]]
                for it in items:
                    (local / it["path"]).write_bytes(base64.b64decode(s["data"][it["key"]]))

    def map_paths(self, s: str) -> str:
        """Each absolute path under a mountPath, in one pass (a mapped path is never
        mapped again)."""
        if not self.mounts:
            return s
        alt = "|".join(re.escape(m) for m in self.mounts)
        return re.sub(r"(?<![\w/.-])(" + alt + r")(?=/|$|\"|\s)",
                      lambda m: str(self.mounts[m.group(1)]), s)

    def env(self, overrides=None) -> dict:
        env = {e["name"]: e["value"] for e in self.container.get("env", [])}
        env.update(overrides or {})
        return env

    def argv(self, env_overrides=None):
        env = self.env(env_overrides)
        words = list(self.container.get("command", [])) + list(self.container.get("args", []))
        return [self.map_paths(expand_k8s_vars(w, env)) for w in words]

    def process_env(self, bin_dirs, env_overrides=None, extra=None):
        """The environment to run argv with: this machine's (less the scheduler
        variables laserd reads), PATH led by bin_dirs, and the container's env."""
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "JOB_COMPLETION_INDEX"))}
        e["PATH"] = os.pathsep.join([str(d) for d in bin_dirs] + [e.get("PATH", "")])
        e.update(self.env(env_overrides))
        e.update(extra or {})
        return e
