"""The `wtframe` command line: `wtframe run module:app` and `wtframe cert`.

```console
$ wtframe run examples.echo:app --port 4433
wtframe: serving https://localhost:4433
wtframe: certificate sha-256 3f5a...c0
wtframe: route /echo
wtframe: route /rooms/{room:int}
wtframe: in a page: new WebTransport("https://localhost:4433/echo", { ... })
wtframe: press Ctrl+C to stop
```

Every line of standard output starts with `wtframe: `. The first line is always
`wtframe: serving https://HOST:PORT` with the real port (also with `--port 0`), and the
second is always `wtframe: certificate sha-256 <64 hex digits>`, so scripts can read both.
Logs go to standard error. Errors in the command line or in the app reference exit with
status 2; SIGINT and SIGTERM shut the server down gracefully and exit with status 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .app import App
from .certs import (
    DEFAULT_HOSTNAMES,
    MAX_VALIDITY,
    Certificate,
    generate_certificate,
    load_certificate,
)
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .server import Server

__all__ = ["AppLoadError", "display_url", "load_app", "main"]

PREFIX = "wtframe: "
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
EXIT_USAGE = 2


class AppLoadError(Exception):
    """A `module:attribute` reference that does not name a usable `wtframe.App`."""


def load_app(reference: str) -> App:
    """Import `module:attribute` and return the `App` it names.

    The current directory is put on `sys.path` first, so modules next to where the command
    runs can be imported. The attribute may be dotted (`module:holder.app`).

    Args:
        reference: A reference such as `examples.echo:app`.

    Returns:
        The app.

    Raises:
        AppLoadError: If the reference is malformed, the module cannot be found or fails to
            import, the attribute is missing, or it is not a `wtframe.App`.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise AppLoadError(f"expected 'module:attribute' (e.g. 'main:app'), got {reference!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise AppLoadError(f"cannot import module {module_name!r}: {exc}") from exc
        raise AppLoadError(_import_failure(module_name, exc)) from exc
    except Exception as exc:
        raise AppLoadError(_import_failure(module_name, exc)) from exc
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, App):
        kind = (
            f"the class {target.__name__}"
            if isinstance(target, type)
            else f"an object of type {type(target).__name__}"
        )
        raise AppLoadError(
            f"{reference} is {kind}, not a wtframe.App (create one with `app = wtframe.App()`)"
        )
    return target


def _import_failure(module_name: str, exc: BaseException) -> str:
    details = "".join(traceback.format_exception(exc)).rstrip()
    return f"importing module {module_name!r} failed:\n{details}"


def display_url(host: str, port: int, path: str = "") -> str:
    """Return the URL a client on this machine uses to reach a server bound to `host`.

    Wildcard and IPv6 loopback binds are shown as `localhost` (browsers reach `localhost`
    over `::1`); the IPv4 wildcard as `127.0.0.1`; any other address as itself.

    Args:
        host: The bound address.
        port: The bound port.
        path: A path to append, starting with `/`.

    Returns:
        An `https://` URL.
    """
    if host in ("", "::", "::1", "localhost"):
        name = "localhost"
    elif host == "0.0.0.0":
        name = "127.0.0.1"
    elif ":" in host:
        name = f"[{host}]"
    else:
        name = host
    return f"https://{name}:{port}{path}"


def _say(line: str) -> None:
    print(PREFIX + line, flush=True)


def _fail(message: str) -> int:
    print(f"{PREFIX}error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _pinnable(certificate: Certificate) -> bool:
    return certificate.not_after - certificate.not_before <= MAX_VALIDITY


def _example_path(app: App) -> str:
    for route in app.router.routes:
        if not route.param_convertors:
            return route.path
    return "/"


def _announce(
    server: Server, app: App, certificate: Certificate, written: tuple[Path, Path] | None
) -> None:
    base = display_url(server.host, server.port)
    _say(f"serving {base}")
    _say(f"certificate sha-256 {certificate.fingerprint}")
    if written is not None:
        _say(f"certificate files {written[0]} {written[1]}")
    for route in app.router.routes:
        _say(f"route {route.path}")
    if _pinnable(certificate):
        _say("in a page: " + certificate.js_snippet(base + _example_path(app)))
    _say("press Ctrl+C to stop")


def _run(args: argparse.Namespace) -> int:
    if args.key is not None and args.cert is None:
        return _fail("--key needs --cert")
    if args.cert is not None and args.cert_dir is not None:
        return _fail("--cert-dir only applies to a generated certificate; drop it or --cert")
    if args.grace < 0:
        return _fail("--grace must be 0 or more")
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.log_level.lower() != "debug":
        # aioquic logs every handshake detail (and browsers' duplicate CRYPTO data) at INFO.
        logging.getLogger("quic").setLevel(logging.WARNING)
    try:
        app = load_app(args.app)
    except AppLoadError as exc:
        return _fail(str(exc))
    written: tuple[Path, Path] | None = None
    try:
        if args.cert is not None:
            certificate = load_certificate(args.cert, args.key or args.cert)
        else:
            certificate = generate_certificate()
            if args.cert_dir is not None:
                written = certificate.write(args.cert_dir)
    except (ConfigurationError, OSError) as exc:
        return _fail(f"certificate: {exc}")

    def ready(server: Server) -> None:
        _announce(server, app, certificate, written)

    try:
        app.run(
            args.host,
            args.port,
            grace=args.grace,
            on_ready=ready,
            certificate=certificate,
        )
    except OSError as exc:
        print(
            f"{PREFIX}error: cannot serve on {args.host} port {args.port}: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    _say("stopped")
    return 0


def _cert(args: argparse.Namespace) -> int:
    hosts: list[str] = args.hosts or list(DEFAULT_HOSTNAMES)
    try:
        certificate = generate_certificate(hosts, days=args.days)
        cert_path, key_path = certificate.write(args.out)
    except (ConfigurationError, OSError) as exc:
        return _fail(str(exc))
    _say(f"certificate sha-256 {certificate.fingerprint}")
    _say(f"certificate file {cert_path}")
    _say(f"key file {key_path}")
    _say(f"hosts {' '.join(hosts)}")
    _say(f"valid until {certificate.not_after.isoformat()}")
    return 0


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="wtframe", description="Run wtframe WebTransport apps and make certificates."
    )
    parser.add_argument("--version", action="version", version=f"wtframe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="serve an app",
        description="Serve a wtframe.App until SIGINT or SIGTERM.",
    )
    run.add_argument("app", metavar="MODULE:APP", help="the app, e.g. examples.echo:app")
    run.add_argument("--host", default="::", help="address to bind (default: :: dual-stack)")
    run.add_argument("--port", type=int, default=4433, help="UDP port; 0 picks a free one")
    run.add_argument("--cert", metavar="FILE", help="PEM certificate (chain)")
    run.add_argument("--key", metavar="FILE", help="PEM private key (default: --cert)")
    run.add_argument(
        "--cert-dir", metavar="DIR", help="write the generated certificate and key here"
    )
    run.add_argument(
        "--grace", type=float, default=5.0, help="seconds sessions get to finish on shutdown"
    )
    run.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="log verbosity")
    run.set_defaults(handler=_run)

    cert = commands.add_parser(
        "cert",
        help="generate a development certificate",
        description="Write a self-signed ECDSA P-256 certificate that browsers accept by hash.",
    )
    cert.add_argument("--days", type=float, default=10.0, help="validity in days (max ~13.9)")
    cert.add_argument("--out", default=".", metavar="DIR", help="directory for the PEM files")
    cert.add_argument(
        "--host",
        dest="hosts",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="host names and IP addresses to cover (default: localhost 127.0.0.1 ::1)",
    )
    cert.set_defaults(handler=_cert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `wtframe` command line.

    Args:
        argv: The arguments after the program name; `sys.argv[1:]` when omitted.

    Returns:
        The exit status: 0 on success, 2 for usage errors and unusable apps.
    """
    parser = _parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    status: int = args.handler(args)
    return status
