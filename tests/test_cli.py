from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import wtframe
from wtframe.certs import load_certificate
from wtframe.cli import AppLoadError, display_url, load_app, main

REPO = Path(__file__).resolve().parent.parent
SERVING = re.compile(r"^wtframe: serving (https://\S+:(\d+))$")
FINGERPRINT = re.compile(r"^wtframe: certificate sha-256 ([0-9a-f]{64})$")
STARTUP_TIMEOUT = 15.0


@dataclass
class Running:
    process: asyncio.subprocess.Process
    url: str
    port: int
    fingerprint: str
    lines: list[str] = field(default_factory=list)

    async def read_line(self) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), STARTUP_TIMEOUT)
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 5) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout)


@asynccontextmanager
async def wtframe_run(*args: str, cwd: Path = REPO) -> AsyncIterator[Running]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wtframe",
        "run",
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--log-level",
        "warning",
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)).decode()
        serving = SERVING.match(first.rstrip("\n"))
        assert serving, f"unexpected first line {first!r}"
        second = (await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)).decode()
        hashed = FINGERPRINT.match(second.rstrip("\n"))
        assert hashed, f"unexpected second line {second!r}"
        running = Running(
            process, serving.group(1), int(serving.group(2)), hashed.group(1), [first, second]
        )
        while not (await running.read_line()).startswith("wtframe: press Ctrl+C"):
            pass
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.communicate()


async def datagram_round_trip(url: str, fingerprint: str) -> bytes:
    async with wtframe.connect(url, cert_hash=fingerprint) as session:
        for _ in range(20):
            session.send_datagram(b"ping")
            try:
                return await asyncio.wait_for(session.receive_datagram(), 0.5)
            except TimeoutError:
                continue
    raise AssertionError("no datagram came back")


async def test_run_serves_echo_and_stops_on_sigterm(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    async with wtframe_run("examples.echo:app", "--cert-dir", str(cert_dir)) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        assert server.port > 0
        output = "\n".join(server.lines)
        assert "wtframe: route /echo" in output
        assert "wtframe: route /rooms/{room:int}" in output
        assert f'new WebTransport("https://127.0.0.1:{server.port}/echo"' in output
        written = load_certificate(cert_dir / "cert.pem", cert_dir / "key.pem")
        assert written.fingerprint == server.fingerprint
        assert f"wtframe: certificate files {cert_dir / 'cert.pem'}" in output

        echoed = await datagram_round_trip(server.url + "/echo", server.fingerprint)
        assert echoed == b"ping"

        assert await server.stop(signal.SIGTERM) == 0
        rest, _ = await server.process.communicate()
        assert rest.decode().splitlines() == ["wtframe: stopped"]


async def test_run_stops_on_sigint() -> None:
    async with wtframe_run("examples.echo:app") as server:
        assert await server.stop(signal.SIGINT) == 0


async def test_run_with_certificate_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cert", "--out", str(tmp_path), "--days", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    hashed = FINGERPRINT.match(printed[0])
    assert hashed
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    async with wtframe_run("examples.echo:app", "--cert", str(cert), "--key", str(key)) as server:
        assert server.fingerprint == hashed.group(1)
        assert not any(line.startswith("wtframe: certificate files") for line in server.lines)
        echoed = await datagram_round_trip(server.url + "/echo", server.fingerprint)
        assert echoed == b"ping"
        assert await server.stop() == 0


def test_cert_writes_a_pinnable_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new"
    argv = ["cert", "--out", str(out), "--days", "3", "--host", "example.test", "10.0.0.1"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    loaded = load_certificate(out / "cert.pem", out / "key.pem")
    assert lines[0] == f"wtframe: certificate sha-256 {loaded.fingerprint}"
    assert f"wtframe: certificate file {out / 'cert.pem'}" in lines
    assert f"wtframe: key file {out / 'key.pem'}" in lines
    assert "wtframe: hosts example.test 10.0.0.1" in lines
    assert (out / "key.pem").stat().st_mode & 0o777 == 0o600
    span = loaded.not_after - loaded.not_before
    assert span.total_seconds() == pytest.approx(3 * 86400 + 3600, abs=2)


def test_cert_refuses_too_long_validity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cert", "--out", str(tmp_path), "--days", "30"]) == 2
    assert "14 days" in capsys.readouterr().err
    assert not (tmp_path / "cert.pem").exists()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wtframe {wtframe.__version__}"


def test_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("wtframe_no_such_module:app", "cannot import module 'wtframe_no_such_module'"),
        ("examples.echo:nope", "module 'examples.echo' has no attribute 'nope'"),
        ("examples.echo:Echo", "examples.echo:Echo is the class Echo, not a wtframe.App"),
        ("examples.echo:app.router", "is an object of type Router, not a wtframe.App"),
        ("examples.echo", "expected 'module:attribute'"),
        ("examples.echo:", "expected 'module:attribute'"),
    ],
)
def test_bad_app_references_exit_2(
    reference: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", reference, "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("wtframe: error: ")
    assert message in captured.err


def test_load_app_accepts_dotted_attributes() -> None:
    from examples import echo

    assert load_app("examples.echo:app") is echo.app
    with pytest.raises(AppLoadError):
        load_app("examples.echo:app.missing")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--key", "key.pem"], "--key needs --cert"),
        (["--cert", "c.pem", "--cert-dir", "d"], "--cert-dir only applies"),
        (["--grace", "-1"], "--grace must be 0 or more"),
        (["--cert", "missing-cert.pem"], "certificate:"),
    ],
)
def test_bad_run_options_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "examples.echo:app", "--port", "0", *argv]) == 2
    assert message in capsys.readouterr().err


async def run_to_exit(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wtframe",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_module_errors_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "wtframe_cli_broken.py").write_text('raise RuntimeError("boom at import")\n')
    (tmp_path / "wtframe_cli_plain.py").write_text("app = 42\n")
    code, out, err = await run_to_exit(
        "run", "wtframe_cli_broken:app", "--port", "0", cwd=tmp_path
    )
    assert (code, out) == (2, "")
    assert "importing module 'wtframe_cli_broken' failed" in err
    assert "RuntimeError: boom at import" in err
    code, out, err = await run_to_exit("run", "wtframe_cli_plain:app", "--port", "0", cwd=tmp_path)
    assert (code, out) == (2, "")
    assert "wtframe_cli_plain:app is an object of type int, not a wtframe.App" in err
    code, out, err = await run_to_exit("run", "wtframe_cli_absent:app", cwd=tmp_path)
    assert (code, out) == (2, "")
    assert "cannot import module 'wtframe_cli_absent'" in err


async def test_app_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "wtframe_cli_local.py").write_text(
        "from examples.echo import Echo\n"
        "import wtframe\n"
        "app = wtframe.App()\n"
        "app.add_session('/here', Echo)\n"
    )
    async with wtframe_run("wtframe_cli_local:app", cwd=tmp_path) as server:
        assert "wtframe: route /here" in server.lines
        echoed = await datagram_round_trip(server.url + "/here", server.fingerprint)
        assert echoed == b"ping"
        assert await server.stop() == 0


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("::", "https://localhost:4433/echo"),
        ("::1", "https://localhost:4433/echo"),
        ("0.0.0.0", "https://127.0.0.1:4433/echo"),
        ("127.0.0.1", "https://127.0.0.1:4433/echo"),
        ("fe80::1", "https://[fe80::1]:4433/echo"),
        ("example.test", "https://example.test:4433/echo"),
    ],
)
def test_display_url(host: str, url: str) -> None:
    assert display_url(host, 4433, "/echo") == url
