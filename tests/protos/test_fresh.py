"""The generated gRPC code on disk is what ``python -m protos.generate`` makes from the .proto."""

from __future__ import annotations

from pathlib import Path

from protos.generate import HERE, generate


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    produced = generate(tmp_path)
    assert produced, "protoc produced nothing"
    stale = [
        path.name
        for path in produced
        if not (HERE / path.name).exists() or (HERE / path.name).read_bytes() != path.read_bytes()
    ]
    assert stale == [], f"regenerate with `python -m protos.generate`: stale {stale}"
