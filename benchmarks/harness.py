"""Processes and measurements: one workload against one server implementation.

An [`Implementation`][benchmarks.harness.Implementation] names a Python module that
serves WebTransport draft-02 on 127.0.0.1: it takes ``--certificate PATH`` and
``--private-key PATH``, binds a free port, prints ``READY <port>`` on stdout and serves
``/echo``, ``/sink`` and ``/clicker`` as [`benchmarks.raw_server`][benchmarks.raw_server]
documents.
Every implementation is driven by the same load generator
([`benchmarks.loadgen`][benchmarks.loadgen]), so only the server differs.

Each measurement starts a fresh server (under [`benchmarks.serve`][benchmarks.serve],
which counts its datagrams and reports its CPU time and memory) and a fresh load
generator, in two processes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "WORKLOADS",
    "Child",
    "HarnessError",
    "Implementation",
    "Settings",
    "WorkloadSpec",
    "compute_metrics",
    "higher_is_better",
    "measure",
]

ROOT = Path(__file__).resolve().parent.parent


class HarnessError(RuntimeError):
    """A server or load generator failed, timed out or said something unexpected."""


@dataclass(frozen=True)
class Implementation:
    """A WebTransport server to benchmark.

    Args:
        name: The column heading.
        server_module: The module run with ``python -m``.
        server_args: Extra arguments after the certificate options.
    """

    name: str
    server_module: str
    server_args: tuple[str, ...] = ()

    def server_argv(
        self, certificate: Path, private_key: Path, profile: Path | None = None
    ) -> list[str]:
        """Return the command that starts this server under the stats wrapper.

        Args:
            certificate: The PEM certificate path.
            private_key: The PEM private key path.
            profile: Where the wrapper writes cProfile statistics on request (``SIGUSR2``).

        Returns:
            The argument vector.
        """
        return [
            sys.executable,
            "-m",
            "benchmarks.serve",
            *(["--profile", str(profile)] if profile is not None else []),
            self.server_module,
            "--certificate",
            str(certificate),
            "--private-key",
            str(private_key),
            *self.server_args,
        ]


@dataclass(frozen=True)
class WorkloadSpec:
    """What a workload measures.

    Args:
        name: The load generator's workload name.
        unit: What one operation is, for metric names (``req``, ``MB``, ...).
        rate_name: The throughput metric's name; empty for none.
        memory: Whether to report server memory growth per operation.
        context: Whether the workload runs once per round against a fixed server
            instead of against each implementation.
        sampled: Whether the server's memory is sampled during the run, and its growth
            from the first sample to the last reported.
        once: Whether the workload runs in the first round only (it is long).
    """

    name: str
    unit: str
    rate_name: str = ""
    memory: bool = False
    context: bool = False
    sampled: bool = False
    once: bool = False

    @property
    def rate(self) -> str:
        """The throughput metric's name."""
        return self.rate_name or f"{self.unit}/s"


WORKLOADS: dict[str, WorkloadSpec] = {
    spec.name: spec
    for spec in (
        WorkloadSpec("seq", "req"),
        WorkloadSpec("seq50", "req"),
        WorkloadSpec("inflight100", "req"),
        WorkloadSpec("framed", "msg"),
        WorkloadSpec("dgram_echo", "rtt"),
        WorkloadSpec("dgram_ingest", "dgram", rate_name="received/s"),
        WorkloadSpec("bulk", "MB"),
        WorkloadSpec("idle", "session", rate_name="handshakes/s", memory=True),
        WorkloadSpec("clicker", "click"),
        WorkloadSpec("streams_memory", "stream", sampled=True, once=True),
        WorkloadSpec("websockets", "req", context=True),
    )
}
"""Every workload, in the order they run and are reported."""


@dataclass(frozen=True)
class Settings:
    """Sizes and durations of one benchmark run.

    Args:
        duration: Seconds each timed workload measures for.
        connections: Connections in `seq50` and `clicker`.
        inflight: Requests in flight in `inflight100` and `framed`.
        size: Bytes per request, message and datagram.
        bulk_bytes: Bytes uploaded by `bulk`.
        sessions: Sessions held by `idle`.
        settle: Seconds `idle` waits before the server's memory is read.
        streams: Streams measured by `streams_memory`.
        warm_up: Streams `streams_memory` sends before its first sample.
        samples: Intervals at whose ends `streams_memory` samples the server's memory.
    """

    duration: float = 2.0
    connections: int = 50
    inflight: int = 100
    size: int = 50
    bulk_bytes: int = 64 * 1024 * 1024
    sessions: int = 5000
    settle: float = 1.0
    streams: int = 1_000_000
    warm_up: int = 20_000
    samples: int = 10

    def loadgen_argv(self, workload: str) -> list[str]:
        """Return the command that starts the load generator for `workload`.

        Args:
            workload: The workload name.

        Returns:
            The argument vector.
        """
        return [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "--workload",
            workload,
            f"--duration={self.duration}",
            f"--connections={self.connections}",
            f"--inflight={self.inflight}",
            f"--size={self.size}",
            f"--bulk-bytes={self.bulk_bytes}",
            f"--sessions={self.sessions}",
            f"--settle={self.settle}",
            f"--streams={self.streams}",
            f"--warm-up={self.warm_up}",
            f"--samples={self.samples}",
        ]

    def timeout(self) -> float:
        """Return a generous bound on one measurement's seconds."""
        return (
            30.0
            + self.duration
            + self.bulk_bytes / 1e6
            + self.sessions * 0.05
            + (self.streams + self.warm_up) * 0.002
        )


class Child:
    """A child process whose stdout is read line by line on a thread.

    Args:
        label: Its name in error messages.
        argv: The command, run from the repository root with it on `PYTHONPATH`.
    """

    def __init__(self, label: str, argv: list[str]) -> None:
        self.label = label
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
            env=env,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def fail(self, message: str) -> HarnessError:
        """Return an error about this process, with the end of its stderr.

        Args:
            message: What went wrong.

        Returns:
            The error, to raise.
        """
        self._stderr.seek(0)
        tail = self._stderr.read()[-2000:].decode(errors="replace").strip()
        return HarnessError(f"{self.label}: {message}" + (f"\n{tail}" if tail else ""))

    def expect(self, prefix: str, timeout: float) -> str:
        """Wait for a stdout line starting with `prefix`, skipping others.

        Args:
            prefix: The expected start of the line.
            timeout: Seconds to wait.

        Returns:
            The rest of the line after the prefix, stripped.

        Raises:
            HarnessError: If the process ends or the time runs out first.
        """
        return self.expect_any((prefix,), timeout)[1]

    def expect_any(self, prefixes: tuple[str, ...], timeout: float) -> tuple[str, str]:
        """Wait for a stdout line starting with one of `prefixes`, skipping others.

        Args:
            prefixes: The expected starts of the line.
            timeout: Seconds to wait.

        Returns:
            The prefix found, and the rest of the line after it, stripped.

        Raises:
            HarnessError: If the process ends or the time runs out first.
        """
        wanted = " or ".join(map(repr, prefixes))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.0))
            except queue.Empty:
                raise self.fail(f"no {wanted} within {timeout:.0f} s") from None
            if line is None:
                self._lines.put(None)
                self.proc.wait()
                raise self.fail(f"exited with {self.proc.returncode} before {wanted}")
            for prefix in prefixes:
                if line.startswith(prefix):
                    return prefix, line[len(prefix) :].strip()

    def send(self, line: str) -> None:
        """Write one line to the process's stdin.

        Args:
            line: The line, without its newline.

        Raises:
            HarnessError: If the process has closed its stdin.
        """
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self.fail(f"cannot write {line!r}: {exc}") from None

    def stats(self) -> dict[str, float]:
        """Ask a server under `benchmarks.serve` for its counters.

        Returns:
            The `STATS` mapping.
        """
        self.proc.send_signal(signal.SIGUSR1)
        stats: dict[str, float] = json.loads(self.expect("STATS ", 10.0))
        return stats

    def wait(self, timeout: float) -> None:
        """Wait for the process to exit on its own, then make sure it has.

        Args:
            timeout: Seconds to wait before killing it.
        """
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.stop()

    def stop(self) -> None:
        """Terminate the process (kill it after 15 s) and release its pipes."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        self._stderr.close()


def measure(
    implementation: Implementation,
    workload: WorkloadSpec,
    settings: Settings,
    certificate: Path,
    private_key: Path,
) -> dict[str, Any]:
    """Run one workload once against a fresh server.

    Args:
        implementation: The server.
        workload: The workload.
        settings: Sizes and durations.
        certificate: The PEM certificate path.
        private_key: The PEM private key path.

    Returns:
        ``{"result": <load generator result>, "server": <counter deltas>,
        "samples": [...]}``; the deltas have keys `cpu` (seconds), `rx`, `tx`
        (datagrams) and `rss_kib`; each sample taken during the run is the server's
        counters plus `ops`, the operations done when it was taken.

    Raises:
        HarnessError: If a process fails or times out.
    """
    server = Child(
        f"{implementation.name} server", implementation.server_argv(certificate, private_key)
    )
    client = None
    try:
        client = Child(f"{workload.name} load generator", settings.loadgen_argv(workload.name))
        port = int(server.expect("READY", 30.0).split()[0])
        client.send(f"PORT {port}")
        client.expect("READY", 60.0)
        before = server.stats()
        client.send("GO")
        samples: list[dict[str, float]] = []
        deadline = time.monotonic() + settings.timeout()
        while True:
            word, rest = client.expect_any(
                ("RESULT", "SAMPLE"), max(deadline - time.monotonic(), 0.0)
            )
            if word == "RESULT":
                break
            samples.append({"ops": float(rest), **server.stats()})
            client.send("SAMPLED")
        result: dict[str, Any] = json.loads(rest)
        after = server.stats()
        client.send("BYE")
        client.wait(10.0)
        if server.proc.poll() is not None:
            raise server.fail(f"exited with {server.proc.returncode} during the run")
    finally:
        if client is not None:
            client.stop()
        server.stop()
    delta = {key: after[key] - before[key] for key in before}
    return {"result": result, "server": delta, "samples": samples}


def higher_is_better(metric: str) -> bool:
    """Tell whether a bigger value of `metric` is an improvement.

    Args:
        metric: A metric name as `compute_metrics` makes them.

    Returns:
        True for rates (names ending in ``/s``), False for costs.
    """
    return metric.endswith("/s")


def compute_metrics(workload: WorkloadSpec, sample: dict[str, Any]) -> dict[str, float]:
    """Turn one measurement into named metrics.

    Args:
        workload: The workload measured.
        sample: What [`measure`][benchmarks.harness.measure] returned.

    Returns:
        Metric name to value, in display order.
    """
    result, server = sample["result"], sample["server"]
    ops = float(result["ops"])
    elapsed = float(result["elapsed"])
    unit = workload.unit
    metrics: dict[str, float] = {}
    if elapsed > 0:
        metrics[workload.rate] = ops / elapsed
    if ops > 0:
        metrics[f"server CPU us/{unit}"] = server["cpu"] * 1e6 / ops
        if server["rx"] or server["tx"]:
            metrics[f"server pkts in/{unit}"] = server["rx"] / ops
            metrics[f"server pkts out/{unit}"] = server["tx"] / ops
        if workload.memory:
            metrics[f"server RSS KiB/{unit}"] = server["rss_kib"] / ops
    samples = sample.get("samples") or []
    if workload.sampled and samples:
        metrics["server RSS growth KiB"] = samples[-1]["rss_kib"] - samples[0]["rss_kib"]
    for name, value in result.get("extra", {}).items():
        metrics[name] = float(value)
    return metrics
