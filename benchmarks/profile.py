"""Where a server's CPU goes under a workload: ``python -m benchmarks.profile [WORKLOAD]``.

The server and the load generator run as in a benchmark (separate processes, the same
load generator). While the workload is measured, the server is profiled, and each
sample of its CPU time is charged to one part of the stack:

* `wtframe`: the framework (``wtframe/``);
* `aioquic`: QUIC, TLS and HTTP/3 (``aioquic/``), including its C extensions;
* `asyncio + I/O`: the event loop, selectors and sockets (system calls included);
* `store`: the clicker's `SQLiteStore` and SQLite, on its writer thread;
* `app`: the clicker example (``examples/clicker/``) and pydantic, which it uses;
* `benchmark code`: the benchmark's own server module and packet counters;
* `other`: anything else (interpreter start-up, logging, ...).

A sample is charged to the innermost frame of its stack that belongs to one of those
parts, so standard-library helpers (``json``, ``dataclasses``, ``threading``) count for
whoever called them.

Two profilers are supported. ``--tool py-spy`` (the default when the ``py-spy`` command
is installed: ``pip install py-spy``) samples every thread of the running server from
outside, a few hundred times a second, with little overhead, and counts only samples
where the thread was running. ``--tool cprofile`` needs nothing installed but sees the
main thread only (not the SQLite writer), counts time blocked in ``epoll`` (shown apart),
and slows Python code down by its own bookkeeping, so it overstates pure-Python parts.

Examples::

    python -m benchmarks.profile                      # clicker against wtframe, 10 s
    python -m benchmarks.profile clicker --impl raw
    python -m benchmarks.profile seq50 --tool cprofile --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import WORKLOADS, Child, HarnessError, Implementation, Settings
from benchmarks.implementations import IMPLEMENTATIONS, parse_implementation
from wtframe.certs import generate_certificate

__all__ = ["CATEGORIES", "Profile", "category_of", "main", "parse_pyspy", "parse_pstats"]

CATEGORIES = (
    "wtframe",
    "aioquic",
    "asyncio + I/O",
    "store",
    "app",
    "benchmark code",
    "other",
)
"""The parts of the stack CPU time is charged to, in display order."""

_RULES: tuple[tuple[str, str], ...] = (
    ("/wtframe/", "wtframe"),
    ("/aioquic/", "aioquic"),
    ("/examples/clicker/store.py", "store"),
    ("/sqlite3/", "store"),
    ("/examples/", "app"),
    ("/pydantic", "app"),
    ("/benchmarks/", "benchmark code"),
    ("/asyncio/", "asyncio + I/O"),
    ("/selectors.py", "asyncio + I/O"),
    ("/socket.py", "asyncio + I/O"),
)
_BUILTIN_RULES: tuple[tuple[str, str], ...] = (
    ("aioquic", "aioquic"),
    ("sqlite3", "store"),
    ("select.", "asyncio + I/O"),
    ("_socket", "asyncio + I/O"),
    ("pydantic", "app"),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def category_of(filename: str) -> str | None:
    """Return the part of the stack a source file belongs to.

    Args:
        filename: The file's path as the profiler reports it; for cProfile's built-in
            functions, their description (``<method 'poll' of 'select.epoll' objects>``).

    Returns:
        One of `CATEGORIES` except ``other``, or None for code that counts for its caller.
    """
    path = filename.replace(os.sep, "/")
    for needle, category in _RULES:
        if needle in path:
            return category
    if path.startswith("<") or path.startswith("{"):
        for needle, category in _BUILTIN_RULES:
            if needle in path:
                return category
    return None


@dataclass
class Profile:
    """CPU samples of one server, by part of the stack and by function.

    Args:
        by_category: Sample weight per category.
        by_function: Sample weight per category and function (``file:line function``),
            the function being the one the samples were charged to.
        idle: Weight left out of the total (cProfile's time blocked in ``epoll``).
    """

    by_category: Counter[str]
    by_function: Counter[tuple[str, str]]
    idle: float = 0.0

    @property
    def total(self) -> float:
        """The weight of every counted sample."""
        return float(sum(self.by_category.values()))


def parse_pyspy(text: str) -> Profile:
    """Read py-spy's ``--format raw`` output (collapsed stacks, outermost frame first).

    Args:
        text: The file's text.

    Returns:
        The profile.
    """
    by_category: Counter[str] = Counter()
    by_function: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_FRAME.match(frame) for frame in stack.split(";")]
        category, charged = "other", frames[-1]
        for match in reversed(frames):
            if match is not None and (found := category_of(match["file"])) is not None:
                category, charged = found, match
                break
        if charged is not None:
            where = f"{_short(charged['file'])} {charged['function']}"
        else:
            where = stack.rsplit(";", 1)[-1]
        by_category[category] += count
        by_function[category, where] += count
    return Profile(by_category, by_function)


def parse_pstats(path: Path) -> Profile:
    """Read cProfile statistics, charging each function's own time to its part.

    Built-in functions count for the part of their callers, in proportion to the time
    each caller spent in them; time in ``epoll`` is counted apart as idle.

    Args:
        path: The statistics file (`cProfile.Profile.dump_stats`).

    Returns:
        The profile, in seconds.
    """
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    by_category: Counter[str] = Counter()
    by_function: Counter[tuple[str, str]] = Counter()
    idle = 0.0
    for (filename, line, function), (_, _, own, _, callers) in stats.items():
        if "select.epoll" in function:
            idle += own
            continue
        where = f"{_short(filename)}:{line} {function}"
        category = category_of(filename if filename != "~" else function)
        if category is None and filename == "~" and callers:
            weights = {key: value[3] for key, value in callers.items()}
            total = sum(weights.values()) or 1.0
            for (caller_file, _, _), weight in weights.items():
                share = own * weight / total
                caller_category = category_of(caller_file) or "other"
                by_category[caller_category] += share
                by_function[caller_category, where] += share
            continue
        by_category[category or "other"] += own
        by_function[category or "other", where] += own
    return Profile(by_category, by_function, idle)


def _short(filename: str) -> str:
    path = filename.replace(os.sep, "/")
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = path.split("/", 1)[-1]
            return path
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return path.removeprefix(root)


def format_profile(
    profile: Profile, cpu_per_op: float, unit: str, top: int, parts: tuple[str, ...] = ()
) -> str:
    """Render the shares of each part and the costliest functions.

    Args:
        profile: The profile.
        cpu_per_op: The server's measured CPU time per operation, in microseconds.
        unit: What one operation is.
        top: How many functions to list, overall and for each of `parts`.
        parts: Categories whose own costliest functions are listed too.

    Returns:
        The text.
    """
    total = profile.total or 1.0
    lines = [f"{'part of the server':<18} {'share':>7} {'us/' + unit:>10}"]
    lines.append("-" * len(lines[0]))
    for category in CATEGORIES:
        share = profile.by_category.get(category, 0) / total
        lines.append(f"{category:<18} {share:>7.1%} {share * cpu_per_op:>10.1f}")
    lines.append(f"{'total':<18} {1:>7.1%} {cpu_per_op:>10.1f}")
    for part in (None, *parts):
        lines.append("")
        ranked = [
            (weight, where)
            for (category, where), weight in profile.by_function.most_common()
            if part is None or category == part
        ]
        lines.append(f"Top {top} functions{f' in {part}' if part else ''} (share of all samples):")
        for weight, where in ranked[:top]:
            share = weight / total
            lines.append(f"  {share:6.1%} {share * cpu_per_op:7.1f} us/{unit}  {where}")
    return "\n".join(lines)


def _pyspy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: The arguments, without the program name; `sys.argv` by default.

    Returns:
        The options.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile",
        description="Profile a benchmark server under one workload.",
    )
    parser.add_argument("workload", nargs="?", default="clicker", choices=list(WORKLOADS))
    parser.add_argument(
        "--impl",
        default="wtframe",
        metavar="NAME[=MODULE ARGS]",
        help=f"the server (default wtframe; known: {', '.join(IMPLEMENTATIONS)})",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--connections", type=int, default=50, help="for seq50 and clicker")
    parser.add_argument(
        "--tool",
        choices=["py-spy", "cprofile"],
        help="the profiler (default py-spy when installed, else cprofile)",
    )
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15, help="functions listed")
    parser.add_argument(
        "--part",
        action="append",
        default=[],
        choices=CATEGORIES,
        help="also list the costliest functions of this part (repeatable)",
    )
    parser.add_argument("--output", type=Path, help="keep the raw profile in this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Profile the server and print the table.

    Args:
        argv: The arguments, without the program name; `sys.argv` by default.

    Returns:
        0 on success, 1 if the run failed, 2 for a bad command line.
    """
    options = parse_args(argv)
    workload = WORKLOADS[options.workload]
    if workload.context:
        print(f"error: {workload.name} does not run against a chosen server", file=sys.stderr)
        return 2
    tool = options.tool or ("py-spy" if _pyspy() else "cprofile")
    if tool == "py-spy" and _pyspy() is None:
        print("error: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    try:
        impl = parse_implementation(options.impl)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = Settings(duration=options.duration, connections=options.connections)
    with tempfile.TemporaryDirectory(prefix="wtbench-profile-") as tmp:
        certificate, private_key = generate_certificate().write(tmp)
        raw = options.output or Path(tmp) / ("profile.txt" if tool == "py-spy" else "cprofile")
        try:
            profile, cpu, ops = _run(
                impl, workload.name, settings, tool, options.rate, raw, certificate, private_key
            )
        except HarnessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    unit = workload.unit
    cpu_per_op = cpu * 1e6 / ops if ops else 0.0
    print(
        f"{workload.name} against {impl.name} for {options.duration:g} s, {tool}: "
        f"{ops:,.0f} {unit}s, server CPU {cpu:.2f} s ({cpu_per_op:.0f} us/{unit})"
    )
    if tool == "cprofile":
        print(
            f"main thread only; {profile.idle:.2f} s blocked in epoll left out; "
            "Python code is slowed by the profiler"
        )
    print()
    print(format_profile(profile, cpu_per_op, unit, options.top, tuple(options.part)))
    return 0


def _run(
    impl: Implementation,
    workload: str,
    settings: Settings,
    tool: str,
    rate: int,
    raw: Path,
    certificate: Path,
    private_key: Path,
) -> tuple[Profile, float, float]:
    profile_file = raw if tool == "cprofile" else None
    server = Child(f"{impl.name} server", impl.server_argv(certificate, private_key, profile_file))
    client = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        client = Child(f"{workload} load generator", settings.loadgen_argv(workload))
        port = int(server.expect("READY", 30.0).split()[0])
        client.send(f"PORT {port}")
        client.expect("READY", 120.0)
        if tool == "py-spy":
            pyspy = _pyspy()
            assert pyspy is not None
            spy = subprocess.Popen(
                [
                    pyspy,
                    "record",
                    "--pid",
                    str(server.proc.pid),
                    "--format",
                    "raw",
                    "--full-filenames",
                    "--nonblocking",
                    "--rate",
                    str(rate),
                    "--duration",
                    str(int(settings.duration) + 2),
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)  # let py-spy attach; idle samples are not counted
        else:
            server.proc.send_signal(signal.SIGUSR2)
        before = server.stats()
        client.send("GO")
        result = client.expect("RESULT", settings.timeout())
        after = server.stats()
        if spy is not None:
            _, errors = spy.communicate(timeout=60)
            if spy.returncode != 0 or not raw.exists():
                raise HarnessError(f"py-spy failed: {errors.decode(errors='replace')[-2000:]}")
            profile = parse_pyspy(raw.read_text())
        else:
            server.proc.send_signal(signal.SIGUSR2)
            server.expect("PROFILED", 60.0)
            profile = parse_pstats(raw)
        client.send("BYE")
        client.wait(10.0)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait()
        if client is not None:
            client.stop()
        server.stop()
    ops = float(json.loads(result)["ops"])
    return profile, after["cpu"] - before["cpu"], ops


if __name__ == "__main__":
    sys.exit(main())
