"""`laserctl merge` of `laserd sweep` shard files equals `laserd merge` of the same files
and an unsharded run, byte for byte; its refusals exit 3."""
import json
import subprocess

from conftest import require_subcommands, tiny_spec


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


def test_merge_equals_laserd_merge_and_one_run(laserd_bin, laserctl_bin, tiny_model, tiny_data,
                                               tmp_path):
    require_subcommands(laserd_bin, "sweep", "merge")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(tiny_data)))
    sweep = [laserd_bin, "sweep", "--model", tiny_model, "--spec", spec, "--device", "cpu",
             "--no-progress"]
    r = run(*sweep, "--out", tmp_path / "full.jsonl")
    assert r.returncode == 0, r.stderr
    shards = []
    for i in range(3):
        out = tmp_path / f"shard{i}.jsonl"
        r = run(*sweep, "--out", out, "--shard", f"{i}/3")
        assert r.returncode == 0, r.stderr
        shards.append(out)
    r = run(laserd_bin, "merge", *shards[::-1], "--out", tmp_path / "laserd_merged.jsonl")
    assert r.returncode == 0, r.stderr
    r = run(laserctl_bin, "merge", *shards[::-1], "--out", tmp_path / "laserctl_merged.jsonl")
    assert r.returncode == 0, r.stderr
    full = (tmp_path / "full.jsonl").read_bytes()
    assert full.count(b"\n") > 10
    assert (tmp_path / "laserctl_merged.jsonl").read_bytes() == \
        (tmp_path / "laserd_merged.jsonl").read_bytes()
    assert (tmp_path / "laserctl_merged.jsonl").read_bytes() == full
    # To stdout without --out.
    r = subprocess.run([str(laserctl_bin), "merge", *map(str, shards)], capture_output=True)
    assert r.returncode == 0 and r.stdout == full

    # A missing shard: FAILED_PRECONDITION, exit 3, naming the missing plan indices.
    r = run(laserctl_bin, "merge", shards[0], shards[1], "--out", tmp_path / "x.jsonl")
    assert r.returncode == 3
    assert "planned results are missing" in r.stderr
    # --allow-incomplete merges what is there.
    r = run(laserctl_bin, "merge", shards[0], "--allow-incomplete", "--out", tmp_path / "y.jsonl")
    assert r.returncode == 0, r.stderr
    # A file that does not exist: exit 4.
    r = run(laserctl_bin, "merge", tmp_path / "nope.jsonl", "--out", tmp_path / "z.jsonl")
    assert r.returncode == 4 and "nope.jsonl" in r.stderr
