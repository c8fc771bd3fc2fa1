"""Driving headless Chromium against WebTransport servers running in the test process.

Chromium speaks WebTransport over HTTP/3 and accepts a self-signed certificate when the page
pins its SHA-256 hash (`serverCertificateHashes`), so no browser flag touches QUIC or TLS.
Selenium calls block, so servers under test run on an event loop in another thread
([`run_in_thread`]) while the test drives the browser with [`run_page`].

Pytest fixtures (enable with `pytest_plugins = ["tests.support.browser"]`):

* `chromium`: one headless Chromium for the whole test session. Skipped when no browser is
  installed, unless the `CI` environment variable is set, in which case it fails.
* `browser`: the shared Chromium for one test; it is sent to `about:blank` afterwards so
  pages of one test never talk to servers of the next.
* `page_server`: a running [`PageServer`] for one test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, Generic, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chromium.webdriver import ChromiumDriver as SeleniumChromium

from tests.support.pages import PageServer

__all__ = [
    "CHROMIUM_ARGS",
    "ChromiumDriver",
    "LoopThread",
    "PageServer",
    "browser",
    "chromium",
    "find_chromedriver",
    "find_chromium",
    "launch_chromium",
    "page_server",
    "run_in_thread",
    "run_page",
]

T = TypeVar("T")
R = TypeVar("R")

CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Command-line flags of every launched browser (a fresh `--user-data-dir` is added)."""

_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Locate a Chromium or Chrome executable.

    The `CHROMIUM_BIN` environment variable wins; then `/usr/bin/chromium`; then the usual
    names on `PATH`.

    Returns:
        The executable's path, or None if there is none.
    """
    return _find("CHROMIUM_BIN", "/usr/bin/chromium", _BROWSER_NAMES)


def find_chromedriver() -> str | None:
    """Locate the chromedriver executable.

    The `CHROMEDRIVER_BIN` environment variable wins; then `/usr/bin/chromedriver`; then
    `chromedriver` on `PATH`.

    Returns:
        The executable's path, or None if there is none.
    """
    return _find("CHROMEDRIVER_BIN", "/usr/bin/chromedriver", ("chromedriver",))


def _find(variable: str, default: str, names: tuple[str, ...]) -> str | None:
    configured = os.environ.get(variable)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access(default, os.X_OK):
        return default
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


class ChromiumDriver(webdriver.Chrome):
    """A Chrome WebDriver that deletes its temporary profile directory when it quits.

    Args:
        profile_dir: The `--user-data-dir` of the browser, removed by [`quit`].
        **kwargs: Passed to `selenium.webdriver.Chrome`.
    """

    def __init__(self, profile_dir: str, **kwargs: Any) -> None:
        self.profile_dir = profile_dir
        super().__init__(**kwargs)

    def quit(self) -> None:
        """Stop the browser and the driver, then delete the profile directory."""
        try:
            super().quit()
        finally:
            shutil.rmtree(self.profile_dir, ignore_errors=True)


def launch_chromium(
    binary: str | None = None,
    driver: str | None = None,
    *,
    extra_args: tuple[str, ...] = (),
) -> ChromiumDriver:
    """Start headless Chromium under chromedriver with a fresh temporary profile.

    The browser's console is captured (`goog:loggingPrefs` is `{"browser": "ALL"}`), so
    `driver.get_log("browser")` returns it. Call `quit()` to stop the browser; that also
    deletes the profile.

    Args:
        binary: The browser executable; found with [`find_chromium`] when omitted.
        driver: The chromedriver executable; found with [`find_chromedriver`] when omitted.
        extra_args: More command-line flags for the browser.

    Returns:
        The WebDriver controlling the browser.

    Raises:
        FileNotFoundError: If the browser or chromedriver cannot be found.
    """
    binary = binary or find_chromium()
    driver = driver or find_chromedriver()
    if binary is None:
        raise FileNotFoundError("no Chromium executable found (set CHROMIUM_BIN)")
    if driver is None:
        raise FileNotFoundError("no chromedriver executable found (set CHROMEDRIVER_BIN)")
    profile_dir = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (*CHROMIUM_ARGS, *extra_args, f"--user-data-dir={profile_dir}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return ChromiumDriver(profile_dir, options=options, service=Service(driver))
    except BaseException:
        shutil.rmtree(profile_dir, ignore_errors=True)
        raise


def run_page(
    driver: SeleniumChromium,
    url: str,
    *,
    result_var: str = "__result",
    timeout: float = 20,
) -> Any:
    """Load a page and wait until it publishes a result in a global variable.

    Args:
        driver: The WebDriver to use.
        url: The page to load.
        result_var: The global (`window.<result_var>`) the page sets when it is done.
        timeout: How many seconds to wait for the variable after the page loaded.

    Returns:
        The variable's value, converted from JavaScript (objects become dicts, arrays lists).

    Raises:
        ValueError: If `result_var` is not a JavaScript identifier.
        AssertionError: If the variable is still undefined after `timeout` seconds; the
            message holds the page's console log and visible text.
    """
    if not result_var.isidentifier():
        raise ValueError(f"not a JavaScript identifier: {result_var!r}")
    _console_log(driver)  # drop messages of earlier pages
    driver.get(url)
    script = (
        f"return window.{result_var} === undefined ? [false, null] : [true, window.{result_var}];"
    )
    deadline = time.monotonic() + timeout
    while True:
        done, value = driver.execute_script(script)
        if done:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    console = "\n".join(_console_log(driver)) or "(empty)"
    try:
        body = driver.execute_script("return document.body ? document.body.innerText : '';")
    except WebDriverException as exc:
        body = f"(unavailable: {exc.msg})"
    raise AssertionError(
        f"{url} did not set window.{result_var} within {timeout} s\n"
        f"--- console ---\n{console}\n--- page text ---\n{body or '(empty)'}"
    )


def _console_log(driver: SeleniumChromium) -> list[str]:
    get_log: Callable[[str], list[dict[str, Any]]] = driver.get_log
    try:
        entries = get_log("browser")
    except WebDriverException:
        return []
    return [f"{entry.get('level')}: {entry.get('message')}" for entry in entries]


class LoopThread(Generic[T]):
    """An asyncio event loop running in a background thread, as given by [`run_in_thread`].

    Attributes:
        value: What the setup context manager produced (for example a server's port).
        loop: The event loop of the thread.
        errors: Unhandled errors the loop reported so far.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, value: T, errors: list[str]) -> None:
        self.loop = loop
        self.value = value
        self.errors = errors

    def call(self, coroutine: Coroutine[Any, Any, R], timeout: float = 10) -> R:
        """Run a coroutine on the thread's loop and wait for its result.

        Args:
            coroutine: The coroutine to run.
            timeout: How many seconds to wait.

        Returns:
            The coroutine's result.
        """
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def call_soon(self, function: Callable[[], object]) -> None:
        """Schedule a plain callable on the thread's loop.

        Args:
            function: Called without arguments in the loop's thread.
        """
        self.loop.call_soon_threadsafe(function)


@contextmanager
def run_in_thread(
    setup: Callable[[], AbstractAsyncContextManager[T]],
    *,
    timeout: float = 10,
    strict: bool = True,
) -> Iterator[LoopThread[T]]:
    """Run an async context manager on a fresh event loop in a background thread.

    The thread creates its loop, enters `setup()` and hands the produced value back; the
    `with` block then runs in the calling thread (free to block on Selenium). On leaving the
    block the context manager is exited on its own loop, remaining tasks are cancelled, the
    loop is closed and the thread joined.

    Args:
        setup: A factory of the async context manager to enter, for example a function
            decorated with `contextlib.asynccontextmanager` that starts a server and yields
            its port.
        timeout: How many seconds setup and teardown may take each.
        strict: Raise an AssertionError at exit if the loop reported unhandled errors
            (exceptions in callbacks, protocols or never-awaited tasks).

    Yields:
        A handle with the produced value and the loop.

    Raises:
        AssertionError: If `strict` and the loop reported unhandled errors, or if setup or
            teardown took longer than `timeout`.
    """
    ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, T]] = (
        concurrent.futures.Future()
    )
    errors: list[str] = []
    stop_box: list[asyncio.Event] = []
    failure: list[BaseException] = []

    def report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exception = context.get("exception")
        message = str(context.get("message", "unhandled error"))
        errors.append(f"{message}: {exception!r}" if exception is not None else message)
        loop.default_exception_handler(context)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(report)
        stop = asyncio.Event()
        stop_box.append(stop)
        try:
            async with setup() as value:
                ready.set_result((loop, value))
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                failure.append(exc)

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                failure.append(exc)

    thread = threading.Thread(target=target, name="asyncio-loop", daemon=True)
    thread.start()
    try:
        loop, value = ready.result(timeout)
    except concurrent.futures.TimeoutError:
        raise AssertionError(f"setup did not finish within {timeout} s") from None
    try:
        yield LoopThread(loop, value, errors)
    finally:
        loop.call_soon_threadsafe(stop_box[0].set)
        thread.join(timeout)
        if thread.is_alive():
            raise AssertionError(f"teardown did not finish within {timeout} s")
    if failure:
        raise failure[0]
    if strict and errors:
        raise AssertionError("the event loop reported unhandled errors:\n" + "\n".join(errors))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def chromium() -> Iterator[ChromiumDriver]:
    """One headless Chromium shared by every test of the session.

    Skipped when Chromium or chromedriver is missing, except under `CI`, where that fails.

    Yields:
        The WebDriver controlling the browser.
    """
    binary, driver = find_chromium(), find_chromedriver()
    if binary is None or driver is None:
        missing = "Chromium" if binary is None else "chromedriver"
        reason = f"{missing} is not installed (run scripts/install-test-deps.sh)"
        if _in_ci():
            pytest.fail(f"{reason}; browser tests cannot be skipped when CI is set")
        pytest.skip(reason)
    instance = launch_chromium(binary, driver)
    try:
        yield instance
    finally:
        instance.quit()


@pytest.fixture
def browser(chromium: ChromiumDriver) -> Iterator[ChromiumDriver]:
    """The shared Chromium for one test, left on `about:blank` afterwards.

    Yields:
        The WebDriver controlling the browser.
    """
    yield chromium
    chromium.get("about:blank")
    _console_log(chromium)


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    """A running [`PageServer`] with no directory; add pages with `page_server.add()`.

    Yields:
        The server.
    """
    with PageServer() as server:
        yield server
