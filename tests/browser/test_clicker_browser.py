"""The clicker example end to end: page, server, SQLite store and a server restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from examples.clicker.app import PATH, create_app
from examples.clicker.store import SQLiteStore
from examples.clicker.web import PageConfig, PageServer, page_config
from tests.support.browser import PageRunner, assert_server_idle, run_in_thread
from wtframe import Server, serve
from wtframe.certs import Certificate, generate_certificate

__all__: list[str] = []


def clicker_server(
    database: Path, certificate: Certificate
) -> Callable[[], AbstractAsyncContextManager[Server]]:
    """A clicker server on `::` (dual-stack) with a SQLite store."""

    @asynccontextmanager
    async def run() -> AsyncIterator[Server]:
        async with SQLiteStore(database) as store:
            app = create_app(store)
            server = await serve(app, host="::", port=0, certificate=certificate)
            try:
                yield server
            finally:
                await server.shutdown(0.5)
                await app.leaderboard.aclose()

    return run


def board(runner: PageRunner) -> list[str]:
    items = runner.execute(
        "return [...document.querySelectorAll('#leaderboard li')].map((li) => li.innerText);"
    )
    return [str(item) for item in items]


def open_as(runner: PageRunner, url: str, name: str) -> None:
    runner.open(url)
    runner.wait_until(lambda: runner.text("status") == "connected", "the session")
    runner.type("username", name, enter=True)  # Enter commits the name: the page sends hello


def test_clicker_page_counts_shares_and_survives_a_restart(
    page_runner: PageRunner, tmp_path: Path
) -> None:
    """Clicker: clicks count, two windows share the leaderboard, a restart loses nothing"""
    runner = page_runner
    database = tmp_path / "clicker.db"
    certificate = generate_certificate()
    config: PageConfig = {"url": "", "certificateHash": certificate.fingerprint}
    clicks = 15
    with PageServer(lambda: config, "::", 0) as pages:
        with run_in_thread(clicker_server(database, certificate)) as server:
            config.update(page_config(server.value.port, certificate.fingerprint, PATH))
            open_as(runner, pages.url(), "Ada Lovelace")
            for _ in range(clicks):
                runner.click("click")
            runner.wait_until(lambda: runner.text("score") == str(clicks), "the score")
            assert runner.text("error") == ""

            with runner.new_window():
                open_as(runner, pages.url(), "Grace")
                runner.wait_until(
                    lambda: f"Ada Lovelace — {clicks}" in board(runner),
                    "the first player on the second window's leaderboard",
                )
                assert runner.text("score") == "0"

        # The server is gone: the page notices, and keeps trying.
        runner.wait_until(lambda: runner.text("status") != "connected", "the disconnect")
        assert runner.text("score") == str(clicks)

        with run_in_thread(clicker_server(database, certificate)) as server:
            config.update(page_config(server.value.port, certificate.fingerprint, PATH))
            runner.wait_until(lambda: runner.text("status") == "connected", "the reconnect")
            runner.wait_until(
                lambda: f"Ada Lovelace — {clicks}" in board(runner), "the persisted leaderboard"
            )
            runner.click("click")
            runner.wait_until(lambda: runner.text("score") == str(clicks + 1), "a new click")

            # A fresh page load shows the persisted score through hello alone.
            open_as(runner, pages.url(), "Ada Lovelace")
            runner.wait_until(lambda: runner.text("score") == str(clicks + 1), "hello")
            runner.wait_until(
                lambda: board(runner)[:1] == [f"Ada Lovelace — {clicks + 1}"],
                "the leaderboard after a reload",
            )


def test_clicker_sessions_end_with_their_pages(page_runner: PageRunner, tmp_path: Path) -> None:
    """Clicker: closing a window or leaving the page ends its session (wtframe.js closes it)"""
    runner = page_runner
    certificate = generate_certificate()
    config: PageConfig = {"url": "", "certificateHash": certificate.fingerprint}
    with (
        PageServer(lambda: config, "::", 0) as pages,
        run_in_thread(clicker_server(tmp_path / "clicker.db", certificate)) as server,
    ):
        config.update(page_config(server.value.port, certificate.fingerprint, PATH))
        open_as(runner, pages.url(), "Ada Lovelace")
        with runner.new_window():
            open_as(runner, pages.url(), "Grace")
            runner.wait_until(lambda: len(server.value.runners) == 2, "two sessions")
        runner.wait_until(
            lambda: len(server.value.runners) == 1, "the second window's end", timeout=5
        )
        runner.open("about:blank")
        assert_server_idle(server, server.value)
