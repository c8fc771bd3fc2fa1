from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ["seq", "framed", "dgram_echo"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_quick_run_prints_a_table_of_each_workload(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    done = _run("--quick", "--workloads", ",".join(WORKLOADS), "--json", str(out))
    assert done.returncode == 0, done.stderr
    rows = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert rows[0] == "workload"
    for name in WORKLOADS:
        assert name in rows
    document = json.loads(out.read_text())
    assert document["errors"] == []
    assert {run["workload"] for run in document["runs"]} == set(WORKLOADS)


def test_unknown_workload_is_refused() -> None:
    done = _run("--quick", "--workloads", "nosuch")
    assert done.returncode == 2
    assert "nosuch" in done.stderr
