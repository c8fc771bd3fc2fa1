from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.profile import category_of, parse_pyspy

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ["seq", "framed", "dgram_echo", "clicker", "streams_memory"]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_quick_run_prints_a_table_of_each_workload(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    markdown = tmp_path / "table.md"
    done = _run(
        "benchmarks.run",
        "--quick",
        "--workloads",
        ",".join(WORKLOADS),
        "--json",
        str(out),
        "--markdown",
        str(markdown),
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert rows[0] == "workload"
    for name in WORKLOADS:
        assert name in rows
    document = json.loads(out.read_text())
    assert document["errors"] == []
    assert {run["workload"] for run in document["runs"]} == set(WORKLOADS)
    for run in document["runs"]:
        if run["workload"] == "clicker":
            assert run["result"]["ops"] > 0
            assert "server CPU us/click" in run["metrics"]
        if run["workload"] == "streams_memory":
            assert [sample["ops"] for sample in run["samples"]] == [0, 500, 1000]
            assert "server RSS growth KiB" in run["metrics"]
    table = markdown.read_text().splitlines()
    assert table[0].startswith("| workload | metric | better | raw median")
    assert any(line.startswith("| clicker | click/s | higher |") for line in table)
    assert table[-1].startswith("Measured ")


def test_unknown_workload_is_refused() -> None:
    done = _run("benchmarks.run", "--quick", "--workloads", "nosuch")
    assert done.returncode == 2
    assert "nosuch" in done.stderr


def test_profile_of_the_clicker_prints_each_part() -> None:
    done = _run("benchmarks.profile", "clicker", "--duration", "0.5", "--tool", "cprofile")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    parts = {line.split()[0] for line in lines if line.endswith(tuple("0123456789"))}
    assert {"wtframe", "aioquic", "app", "total"} <= parts
    share = next(line for line in lines if line.startswith("wtframe")).split()[1]
    assert float(share.rstrip("%")) > 0


def test_pyspy_samples_count_for_the_innermost_known_frame() -> None:
    text = "\n".join(
        [
            "run (/lib/python3.11/asyncio/events.py:80);"
            "feed (/repo/wtframe/streams.py:10);"
            "dumps (/lib/python3.11/json/__init__.py:231) 3",
            "run (/lib/python3.11/threading.py:975);"
            "_serve (/repo/examples/clicker/store.py:480) 2",
            "<module> (/repo/x.py:1) 1",
        ]
    )
    profile = parse_pyspy(text)
    assert profile.by_category == {"wtframe": 3, "store": 2, "other": 1}
    assert profile.by_function["wtframe", "/repo/wtframe/streams.py feed"] == 3
    assert profile.total == 6
    assert category_of("/site-packages/aioquic/quic/connection.py") == "aioquic"
    assert category_of("<method 'poll' of 'select.epoll' objects>") == "asyncio + I/O"
    assert category_of("/lib/python3.11/json/encoder.py") is None
