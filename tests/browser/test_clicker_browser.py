from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from examples.clicker.app import PATH, create_app
from examples.clicker.store import SQLiteStore
from examples.clicker.web import PageConfig, PageServer, page_config
from tests.support.browser import ChromiumDriver, run_in_thread
from wtframe import serve
from wtframe.certs import Certificate, generate_certificate

__all__: list[str] = []


def clicker_server(
    database: Path, certificate: Certificate
) -> Callable[[], AbstractAsyncContextManager[int]]:
    """A clicker server on ::1 with a SQLite store; yields its port."""

    @asynccontextmanager
    async def run() -> AsyncIterator[int]:
        async with SQLiteStore(database) as store:
            app = create_app(store)
            server = await serve(app, host="::1", port=0, certificate=certificate)
            try:
                yield server.port
            finally:
                await server.shutdown(0.5)
                await app.leaderboard.aclose()

    return run


def wait_until(
    driver: ChromiumDriver, check: Callable[[], bool], what: str, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except WebDriverException:
            pass
        time.sleep(0.05)
    get_log: Callable[[str], list[dict[str, Any]]] = driver.get_log
    console = "\n".join(str(entry.get("message")) for entry in get_log("browser"))
    body = driver.execute_script("return document.body ? document.body.innerText : '';")
    raise AssertionError(f"timed out waiting for {what}\n--- console ---\n{console}\n{body}")


def text(driver: ChromiumDriver, element_id: str) -> str:
    value: Any = driver.find_element(By.ID, element_id).text
    return str(value)


def board(driver: ChromiumDriver) -> list[str]:
    items: list[Any] = driver.find_elements(By.CSS_SELECTOR, "#leaderboard li")
    return [str(item.text) for item in items]


def open_as(driver: ChromiumDriver, url: str, name: str) -> None:
    driver.get(url)
    wait_until(driver, lambda: text(driver, "status") == "connected", "the session")
    field = driver.find_element(By.ID, "username")
    field.send_keys(name + "\n")  # Enter commits the name: the page sends hello


@pytest.mark.browser
def test_clicker_page_counts_shares_and_survives_a_restart(
    browser: ChromiumDriver, tmp_path: Path
) -> None:
    database = tmp_path / "clicker.db"
    certificate = generate_certificate()
    config: PageConfig = {"url": "", "certificateHash": certificate.fingerprint}
    clicks = 15
    with PageServer(lambda: config, "::1", 0) as pages:
        with run_in_thread(clicker_server(database, certificate)) as server:
            config.update(page_config(server.value, certificate.fingerprint, PATH))
            open_as(browser, pages.url(), "Ada Lovelace")
            button = browser.find_element(By.ID, "click")
            for _ in range(clicks):
                button.click()
            wait_until(browser, lambda: text(browser, "score") == str(clicks), "the score")
            assert text(browser, "error") == ""

            first_window = browser.current_window_handle
            browser.switch_to.new_window("window")
            try:
                open_as(browser, pages.url(), "Grace")
                wait_until(
                    browser,
                    lambda: f"Ada Lovelace — {clicks}" in board(browser),
                    "the first player on the second window's leaderboard",
                )
                assert text(browser, "score") == "0"
            finally:
                browser.close()
                browser.switch_to.window(first_window)

        # The server is gone: the page notices, and keeps trying.
        wait_until(browser, lambda: text(browser, "status") != "connected", "the disconnect")
        assert text(browser, "score") == str(clicks)

        with run_in_thread(clicker_server(database, certificate)) as server:
            config.update(page_config(server.value, certificate.fingerprint, PATH))
            wait_until(browser, lambda: text(browser, "status") == "connected", "the reconnect")
            wait_until(
                browser,
                lambda: f"Ada Lovelace — {clicks}" in board(browser),
                "the persisted leaderboard",
            )
            browser.find_element(By.ID, "click").click()
            wait_until(browser, lambda: text(browser, "score") == str(clicks + 1), "a new click")

            # A fresh page load shows the persisted score through hello alone.
            open_as(browser, pages.url(), "Ada Lovelace")
            wait_until(browser, lambda: text(browser, "score") == str(clicks + 1), "hello")
            wait_until(
                browser,
                lambda: board(browser)[:1] == [f"Ada Lovelace — {clicks + 1}"],
                "the leaderboard after a reload",
            )
