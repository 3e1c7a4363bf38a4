"""Every benchmark still runs: each ``bench/*.py --smoke`` as a process, its report read back.

The figures are not judged here (speed targets live in the benchmarks, never in timed
tests); what is checked is that each script runs to its end and prints its report, plus the
facts a benchmark states besides speed: the edge's cold sync ends with central's content
hash and its drain with an empty outbox.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURE = r"\d+(?:[.,]\d+)*"
#: a difference of two timings: on a loaded machine a smoke run's may come out below zero
SIGNED = rf"-?{FIGURE}"

#: benchmark → lines its smoke report must hold (regular expressions, each matched on a line)
REPORTS = {
    "engine": [
        rf"^\s+50 +{FIGURE} +{FIGURE} +{FIGURE} +{FIGURE} +{FIGURE}$",
        r"^ratio 10000 / 100 promotions, chain mix",
        rf"^\s+50 lines: {SIGNED} µs \({FIGURE} more applied\)$",
        rf"^\s+50 lines: .*ratio {FIGURE} {FIGURE}; applied",
    ],
    "edge": [
        rf"^cold full sync: {FIGURE} s .* content hash equal to central: True$",
        rf"^offline calculate, 50 lines: p50 {FIGURE} ms, p99 {FIGURE} ms",
        rf"^outbox drain, acknowledge-only server: {FIGURE} receipts/s",
        rf"^outbox drain, real central applying: {FIGURE} receipts/s .*depth after: 0\)$",
        rf"calls once the breaker is open: +{FIGURE} +p50 +{FIGURE} ms +p99 +{FIGURE} ms",
    ],
    "central": [
        rf"^confirmed receipts/s at  1 connection\(s\): +{FIGURE}$",
        rf"^Calculate, 50-line receipt, {FIGURE} calls: median {FIGURE} ms, p99 {FIGURE} ms$",
    ],
    "failover": [
        rf"calls before the breaker opened: +{FIGURE} +p50 +{FIGURE} ms +p99 +{FIGURE} ms",
        rf"calls once the breaker is open: +{FIGURE} +p50 +{FIGURE} ms +p99 +{FIGURE} ms",
    ],
    "roundtrip": [
        rf"^ +1 +{FIGURE} \| +{FIGURE} / +{FIGURE} +\| +{FIGURE} / +{FIGURE} +\|",
    ],
    "serial": [
        rf"^ +9600 +{FIGURE} +{FIGURE} +{FIGURE} +{FIGURE} +{FIGURE} +{FIGURE}x$",
        rf"^ +115200 +{FIGURE} +{FIGURE} +{FIGURE} +{FIGURE} +{FIGURE} +{FIGURE}x$",
    ],
}


def test_every_benchmark_has_a_smoke_check() -> None:
    scripts = {path.stem for path in (ROOT / "bench").glob("*.py") if not path.stem.startswith("_")}
    assert scripts == set(REPORTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REPORTS))
def test_benchmark_smoke_run_reports(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--smoke"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    missing = [pattern for pattern in REPORTS[name]
               if not re.search(pattern, report, flags=re.MULTILINE)]
    assert not missing, f"bench/{name}.py --smoke did not print lines like {missing}:\n{report}"
