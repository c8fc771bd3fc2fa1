"""[`App`][wtframe.App]: the routes of a WebTransport server and how to run them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import signal
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from .codecs import Codec
from .exceptions import ConfigurationError
from .hooks import hook_types
from .limits import Limits
from .origins import OriginPolicy
from .routing import Router, SessionRoute
from .session import Session

if TYPE_CHECKING:
    from .server import Server

__all__ = ["App", "State"]

F = TypeVar("F", bound=Callable[[], Any])


class State(SimpleNamespace):
    """An attribute bag for the app's shared objects: `app.state.store = SQLiteStore(...)`."""


S = TypeVar("S", bound=type[Session])


class App:
    """A WebTransport application: a router from paths to `Session` subclasses.

    Args:
        routes: Routes to start with; more are added with `session()` or `add_session()`.
        max_sessions: Sessions one QUIC connection may hold at once (a client asking for
            more gets 429). Also advertised to the peer in SETTINGS. A shortcut for
            `limits=Limits(max_sessions=...)`; it wins over `limits.max_sessions`.
        codec: The codec for messages that are neither bytes nor text, for sessions that do
            not set their own `codec`; JSON when `None`.
        limits: The server's resource [`Limits`][wtframe.limits.Limits]; safe defaults.
        allowed_origins: The web origins whose pages may open sessions, exact
            (`https://example.com`) or wildcards (`https://*.example.com`). `None` (the
            default) allows every origin: lock it down before deploying. A refused request
            gets `403` before any hook runs. See [`OriginPolicy`][wtframe.origins.OriginPolicy].
        require_origin: Also refuse (`403`) requests that carry no `origin` header, that
            is, clients that are not browsers. Off by default.
        on_startup: Callables (sync or async) run, in order, before the server takes its
            first session: open databases and pools here. More with `@app.on_startup`.
        on_shutdown: Callables run, in order, after every session has ended during
            `Server.shutdown()`: close what `on_startup` opened. More with `@app.on_shutdown`.

    Raises:
        ConfigurationError: If a limit or an origin is invalid.

    Example:
        ```python
        app = App()

        @app.session("/echo")
        class Echo(Session):
            async def on_datagram(self, data: bytes) -> None:
                self.send_datagram(data)
        ```
    """

    def __init__(
        self,
        routes: list[SessionRoute] | None = None,
        *,
        max_sessions: int | None = None,
        codec: Codec[Any] | None = None,
        limits: Limits | None = None,
        allowed_origins: Iterable[str] | None = None,
        require_origin: bool = False,
        on_startup: Iterable[Callable[[], Any]] = (),
        on_shutdown: Iterable[Callable[[], Any]] = (),
    ) -> None:
        limits = limits or Limits()
        if max_sessions is not None:
            if max_sessions < 1:
                raise ConfigurationError("max_sessions must be at least 1")
            limits = dataclasses.replace(limits, max_sessions=max_sessions)
        self.router = Router(routes)
        """The app's [`Router`][wtframe.routing.Router]."""
        self.limits = limits
        """The app's resource [`Limits`][wtframe.limits.Limits]."""
        self.origin_policy = OriginPolicy(allowed_origins, require_origin=require_origin)
        """Which origins may open sessions."""
        self.codec = codec
        self.state = State()
        """Shared state for the app's sessions (`self.app.state.db = ...`), set up by
        `on_startup` hooks and reached from sessions as `self.app.state`."""
        self.startup_hooks: list[Callable[[], Any]] = list(on_startup)
        """What runs before the first session (see `on_startup`)."""
        self.shutdown_hooks: list[Callable[[], Any]] = list(on_shutdown)
        """What runs after the last session (see `on_shutdown`)."""

    def on_startup(self, func: F) -> F:
        """Decorate a function (sync or async) to run before the server takes sessions.

        Args:
            func: The function; it takes no arguments.

        Returns:
            `func`, unchanged.
        """
        self.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: F) -> F:
        """Decorate a function (sync or async) to run once every session has ended.

        Args:
            func: The function; it takes no arguments.

        Returns:
            `func`, unchanged.
        """
        self.shutdown_hooks.append(func)
        return func

    async def startup(self) -> None:
        """Run the startup hooks, in order (`serve()` does this before binding)."""
        for hook in self.startup_hooks:
            result = hook()
            if inspect.isawaitable(result):
                await result

    async def shutdown(self) -> None:
        """Run the shutdown hooks, in order; one that raises is logged and the rest still run."""
        for hook in self.shutdown_hooks:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logging.getLogger("wtframe").exception("shutdown hook %r raised", hook)

    @property
    def max_sessions(self) -> int:
        """Sessions one QUIC connection may hold at once (`limits.max_sessions`)."""
        return self.limits.max_sessions

    def add_session(self, path: str, cls: type[Session], *, name: str | None = None) -> None:
        """Route sessions requested at `path` to `cls`.

        Args:
            path: A path template such as `/rooms/{room:int}`.
            cls: A `Session` subclass.
            name: A route name for `url_path_for`; defaults to the class name.

        Raises:
            ConfigurationError: If `cls` is not a `Session` subclass or the template is bad.
        """
        if not (isinstance(cls, type) and issubclass(cls, Session)):
            raise ConfigurationError(f"{cls!r} is not a subclass of wtframe.Session")
        hook_types(cls)  # a hook annotation that cannot be decoded fails here, not per message
        self.router.add_session(path, cls, name=name)

    def session(self, path: str, *, name: str | None = None) -> Callable[[S], S]:
        """Decorate a `Session` subclass to route sessions requested at `path` to it.

        Args:
            path: A path template such as `/rooms/{room:int}`.
            name: A route name; defaults to the class name.

        Returns:
            A decorator that registers the class and returns it unchanged.
        """

        def register(cls: S) -> S:
            self.add_session(path, cls, name=name)
            return cls

        return register

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """Build the path of the route called `name` with the given parameters.

        Args:
            name: The route name.
            **params: The path parameters.

        Returns:
            The path.
        """
        return self.router.url_path_for(name, **params)

    async def serve(self, host: str = "::", port: int = 4433, **options: Any) -> Server:
        """Start serving this app; the same as [`wtframe.serve(app, ...)`][wtframe.serve].

        Args:
            host: The address to bind; `::` is dual-stack.
            port: The UDP port; 0 picks a free one.
            **options: The other options of [`serve()`][wtframe.serve]: `certfile`,
                `keyfile`, `certificate`, `idle_timeout`.

        Returns:
            The running server.
        """
        from .server import serve

        return await serve(self, host, port, **options)

    def run(
        self,
        host: str = "::",
        port: int = 4433,
        *,
        grace: float = 5.0,
        on_ready: Callable[[Server], None] | None = None,
        **options: Any,
    ) -> None:
        """Serve until SIGINT or SIGTERM, then shut down gracefully.

        On a signal every session is sent DRAIN (and sees `Session.server_draining`), gets
        `grace` seconds to finish, and is then closed with `CloseCode.GOING_AWAY`; sessions
        requested meanwhile are answered `503`. A second signal during the grace period
        closes the remaining sessions at once.

        Args:
            host: The address to bind; `::` is dual-stack.
            port: The UDP port; 0 picks a free one.
            grace: Seconds sessions get to finish after DRAIN.
            on_ready: Called with the running server (e.g. to print its URL and hash).
            **options: `certfile`, `keyfile`, `certificate`, `idle_timeout`.
        """
        asyncio.run(self._run(host, port, grace, on_ready, options))

    async def _run(
        self,
        host: str,
        port: int,
        grace: float,
        on_ready: Callable[[Server], None] | None,
        options: dict[str, Any],
    ) -> None:
        server = await self.serve(host, port, **options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready(server)
        try:
            await stop.wait()
        finally:
            stop.clear()
            shutdown = loop.create_task(server.shutdown(grace))
            again = loop.create_task(stop.wait())  # a second signal: no more grace
            await asyncio.wait({shutdown, again}, return_when=asyncio.FIRST_COMPLETED)
            if not shutdown.done():
                server.end_grace()
            again.cancel()
            await shutdown
