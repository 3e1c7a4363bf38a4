"""The operator's documents keep up with the code: every configuration key the daemon accepts,
every metric it exports and every ``tillgate status`` field is explained.

The lists come from the code itself (the configuration's own "unknown key" hints, the metrics
registry, :func:`offline.status.read_status`), so a new key without documentation fails here.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from adapter.config import InvalidConfigError, load_config, parse_config
from adapter.metrics import DaemonMetrics
from offline.status import read_status

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "packaging" / "tillgate.toml.example"
OPERATIONS = REPO / "docs" / "operations.md"

#: where each section's keys live in a configuration document
SECTIONS: dict[str, Any] = {
    "": {},
    "central": {},
    "cache": {},
    "listener": [{}],
    "lane": [{"id": "01"}],
    "offline": {},
    "sync": {},
    "metrics": {},
}


def accepted_keys() -> dict[str, list[str]]:
    """Section → the keys the parser accepts there, read from its unknown-key hints."""
    doc: dict[str, Any] = {"unknown_key_probe": 1}
    for section, value in copy.deepcopy(SECTIONS).items():
        if section:
            doc[section] = value
            target = value[0] if isinstance(value, list) else value
            target["unknown_key_probe"] = 1
    with pytest.raises(InvalidConfigError) as rejected:
        parse_config(doc, file="probe.toml", base=REPO)
    keys: dict[str, list[str]] = {}
    for problem in rejected.value.problems:
        assert problem.key is not None
        if problem.key.endswith("unknown_key_probe"):
            section = re.sub(r"\[\d+\]", "", problem.key.rpartition(".")[0])
            keys[section] = problem.hint.removeprefix("known keys: ").split(", ")
    assert set(keys) == set(SECTIONS), keys
    keys[""] = [k for k in keys[""] if k not in SECTIONS]
    return keys


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.data_dir == Path("/var/lib/tillgate")
    assert config.cache.db == Path("/var/lib/tillgate/edge.db")
    assert config.central.embedded
    assert config.metrics is not None


def test_every_configuration_key_is_documented() -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    operations = OPERATIONS.read_text(encoding="utf-8")
    missing = []
    for section, keys in accepted_keys().items():
        for key in keys:
            if not re.search(rf"^(# ?)?{key} = ", example, re.MULTILINE):
                missing.append(f"tillgate.toml.example: {section}.{key}")
            if f"| `{key}` |" not in operations:
                missing.append(f"operations.md: {section}.{key}")
    for section, value in SECTIONS.items():
        if section:
            header = f"[[{section}]]" if isinstance(value, list) else f"[{section}]"
            assert header in example, header
            assert f"### `{header}`" in operations, header
    assert missing == []


def test_every_metric_is_documented() -> None:
    operations = OPERATIONS.read_text(encoding="utf-8")
    metrics = DaemonMetrics()
    families = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in metrics.registry.collect()
    }
    assert "tillgate_outbox_depth" in families
    assert sorted(name for name in families if f"`{name}`" not in operations) == []


def test_every_status_field_is_documented(tmp_path: Path) -> None:
    operations = OPERATIONS.read_text(encoding="utf-8")
    status = read_status(tmp_path / "no-such-edge.db")
    fields = [
        f"{key}.{inner}" if isinstance(value, dict) else key
        for key, value in status.items()
        for inner in (value if isinstance(value, dict) else [None])
    ]
    assert "outbox.depth" in fields
    assert [f for f in fields if f"| `{f}` |" not in operations] == []
