"""Run the benchmark: ``python -m benchmarks.run [--quick] [--repeat N] [--json FILE]``.

Every round runs each workload against each implementation in turn (interleaved), each
time with a fresh server and load generator; the table gives the median and range over
the rounds, and each implementation's median over the first (baseline) one's. Workloads
marked `once` (the long `streams_memory`) run in the first round only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    WORKLOADS,
    HarnessError,
    Implementation,
    Settings,
    compute_metrics,
    measure,
)
from benchmarks.implementations import CONTEXT, IMPLEMENTATIONS, parse_implementation
from benchmarks.report import format_markdown, format_table, format_value, summarize
from wtframe.certs import generate_certificate

__all__ = ["main", "parse_args", "settings_from"]

QUICK = Settings(
    duration=0.3,
    connections=10,
    bulk_bytes=2 * 1024 * 1024,
    sessions=50,
    settle=0.2,
    streams=1000,
    warm_up=200,
    samples=2,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: The arguments, without the program name; `sys.argv` by default.

    Returns:
        The options.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark WebTransport servers side by side.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts, one round")
    parser.add_argument("--repeat", type=int, help="rounds (default 5, quick 1)")
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--impl",
        action="append",
        metavar="NAME[=MODULE ARGS]",
        help=f"implementation to run, repeatable; the first is the baseline "
        f"(default: {', '.join(IMPLEMENTATIONS)})",
    )
    parser.add_argument("--duration", type=float, help="seconds per timed workload")
    parser.add_argument("--sessions", type=int, help="idle sessions (default 5000)")
    parser.add_argument("--streams", type=int, help="streams_memory streams (default 1000000)")
    parser.add_argument("--bulk-mib", type=int, help="MiB uploaded by bulk (default 64)")
    parser.add_argument("--connections", type=int, help="connections in seq50 and clicker")
    parser.add_argument("--inflight", type=int, help="in flight in inflight100/framed")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="also write the table here as Markdown"
    )
    return parser.parse_args(argv)


def settings_from(options: argparse.Namespace) -> Settings:
    """Build the settings from the quick preset or defaults plus overrides.

    Args:
        options: The parsed command line.

    Returns:
        The settings.
    """
    base = QUICK if options.quick else Settings()
    return Settings(
        duration=options.duration or base.duration,
        connections=options.connections or base.connections,
        inflight=options.inflight or base.inflight,
        size=base.size,
        bulk_bytes=options.bulk_mib * 1024 * 1024 if options.bulk_mib else base.bulk_bytes,
        sessions=options.sessions or base.sessions,
        settle=base.settle,
        streams=options.streams or base.streams,
        warm_up=min(base.warm_up, options.streams) if options.streams else base.warm_up,
        samples=base.samples,
    )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table.

    Args:
        argv: The arguments, without the program name; `sys.argv` by default.

    Returns:
        0 when every measurement succeeded, 1 otherwise.
    """
    options = parse_args(argv)
    settings = settings_from(options)
    repeat = options.repeat or (1 if options.quick else 5)
    try:
        impls = [parse_implementation(text) for text in options.impl or list(IMPLEMENTATIONS)]
        workloads = [WORKLOADS[name.strip()] for name in options.workloads.split(",") if name]
    except (ValueError, KeyError) as exc:
        _log(f"error: {exc}")
        return 2
    names = [impl.name for impl in impls]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {w.name: {} for w in workloads}
    runs: list[dict[str, Any]] = []
    errors: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wtbench-") as tmp:
        certificate, private_key = generate_certificate().write(tmp)
        for round_number in range(1, repeat + 1):
            for workload in workloads:
                if workload.once and round_number > 1:
                    continue
                targets: list[tuple[str, Implementation]] = (
                    [(names[0], CONTEXT)]
                    if workload.context
                    else list(zip(names, impls, strict=True))
                )
                for column, impl in targets:
                    label = f"[{round_number}/{repeat}] {workload.name} {impl.name}"
                    try:
                        sample = measure(impl, workload, settings, certificate, private_key)
                    except HarnessError as exc:
                        errors.append(f"{label}: {exc}")
                        _log(f"{label}: FAILED {exc}")
                        continue
                    metrics = compute_metrics(workload, sample)
                    samples[workload.name].setdefault(column, []).append(metrics)
                    runs.append(
                        {
                            "round": round_number,
                            "workload": workload.name,
                            "implementation": impl.name,
                            "metrics": metrics,
                            **sample,
                        }
                    )
                    first = next(iter(metrics.items()), ("", 0.0))
                    _log(f"{label}: {format_value(first[1])} {first[0]}")
    rows = summarize(samples, names)
    notes = {w.name: "*" for w in workloads if w.context}
    notes |= {w.name: "†" for w in workloads if w.once and repeat > 1}
    footnotes = []
    if any(w.context for w in workloads):
        footnotes.append(f"* {CONTEXT.name} server ({CONTEXT.server_module}), for context")
    if any(w.once for w in workloads) and repeat > 1:
        footnotes.append("† first round only")
    elapsed = time.monotonic() - started
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    summary = (
        f"{repeat} round(s) in {elapsed:.0f} s on {os.cpu_count()} CPUs "
        f"(load average at the end {load}); {settings}"
    )
    print(format_table(rows, names, notes))
    for line in footnotes:
        print(line)
    print(summary)
    if options.markdown is not None:
        today = datetime.date.today().isoformat()
        options.markdown.write_text(
            format_markdown(rows, names, notes)
            + "\n\n"
            + "".join(line.replace("*", "\\*") + "  \n" for line in footnotes)
            + f"Measured {today}: {summary}.\n"
        )
    if options.json is not None:
        document = {
            "settings": vars(settings) | {"repeat": repeat},
            "implementations": [vars(impl) for impl in impls],
            "runs": runs,
            "errors": errors,
            "summary": [
                {
                    "workload": row.workload,
                    "metric": row.metric,
                    "columns": {
                        name: None if s is None else vars(s) for name, s in row.columns.items()
                    },
                }
                for row in rows
            ],
        }
        options.json.write_text(json.dumps(document, indent=2) + "\n")
    for error in errors:
        _log(f"error: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
