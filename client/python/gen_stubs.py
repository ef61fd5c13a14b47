#!/usr/bin/env python3
"""Generates laserd_client/v1/*_pb2.py, *_pb2.pyi and *_pb2_grpc.py from proto/laser/v1.

The generated files are committed; tests/test_generated.py reruns this generator into a
temporary directory and fails when the committed files differ (a proto changed without
regenerating). Needs grpcio-tools (pip). Usage:

    python3 client/python/gen_stubs.py [--out DIR]
"""
import argparse
import pathlib
import re
import shutil
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROTO_ROOT = REPO / "proto"
PROTOS = ["laser/v1/dataset.proto", "laser/v1/model.proto", "laser/v1/sweep.proto"]
DEFAULT_OUT = HERE / "laserd_client" / "v1"


def generate(out_dir: pathlib.Path) -> list:
    from grpc_tools import protoc
    import grpc_tools

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rc = protoc.main([
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *PROTOS,
        ])
        if rc != 0:
            raise SystemExit(f"protoc failed with {rc}")
        written = []
        for f in sorted((pathlib.Path(tmp) / "laser" / "v1").iterdir()):
            text = f.read_text()
            # The generated modules import each other as `laser.v1`; inside the package
            # they are `laserd_client.v1`.
            text = re.sub(r"^from laser\.v1 import", "from laserd_client.v1 import", text,
                          flags=re.M)
            (out_dir / f.name).write_text(text)
            written.append(f.name)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    for name in generate(args.out):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
