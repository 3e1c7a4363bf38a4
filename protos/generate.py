"""Regenerate the gRPC code from ``protos/*.proto``: ``python -m protos.generate``.

The one way generated code is made; ``tests/protos/test_fresh.py`` fails when the files on
disk differ from what this produces, so a changed .proto cannot ship with stale code.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules for every .proto here into ``out_dir``; return their paths."""
    from grpc_tools import protoc  # noqa: PLC0415 - a dev-only dependency

    include = Path(protoc.__file__).resolve().parent / "_proto"
    protos = sorted(HERE.glob("*.proto"))
    root = HERE.parent
    plugins = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"-I{root}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(p.relative_to(root)) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in (out_dir / "protos").iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            (HERE / path.name).write_bytes(path.read_bytes())
            print(f"wrote protos/{path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
