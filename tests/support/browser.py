"""Driving headless Chromium and Firefox against WebTransport servers in the test process.

Both browsers speak WebTransport over HTTP/3 and accept a self-signed certificate when the
page pins its SHA-256 hash (`serverCertificateHashes`), so no browser flag touches QUIC or
TLS. Browser calls block, so servers under test run on an event loop in another thread
([`run_in_thread`]) while the test drives the browser through a [`PageRunner`].

Pytest fixtures (enable with `pytest_plugins = ["tests.support.browser"]`):

* `page_runner`: the browser for one test, behind one API for every browser: `run(url)`
  loads a page and returns what it stored in `window.__result`; `text`, `click`, `type`,
  `new_window` and `wait_until` drive pages like a user. It is parametrized by
  `browser_name` (`chromium`, `firefox`), so a test that asks for it runs once per browser
  and carries the `browser` marker plus `chromium` or `firefox`. To move a test from
  `browser` to every browser: ask for `page_runner: PageRunner` instead of
  `browser: ChromiumDriver`, and call `page_runner.run(url)` instead of
  `run_page(browser, url)`.
* `chromium`, `firefox`: one headless browser of each kind for the whole test session,
  started on first use. A missing browser skips its tests, unless the `CI` environment
  variable is set, in which case it fails them.
* `browser`: the shared Chromium (a Selenium WebDriver) for one test, sent to
  `about:blank` afterwards so pages of one test never talk to servers of the next.
* `page_server`: a running [`PageServer`] for one test.
* `loopback_network`, `browser_network`: where the process may (as root), browsers and
  the servers they talk to live in a network namespace of their own whose only interface
  is loopback, so no browser reaches the outside world. The namespace is made once per
  session; a test that uses a browser fixture enters it with its main thread (and the
  threads and processes it starts) and leaves it afterwards.

Firefox resolves `localhost` to `127.0.0.1` for QUIC, Chromium to `::1`, and neither falls
back to the other address: servers a page reaches as `localhost` must bind `::`
(dual-stack), which inside the namespace reaches loopback only.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import ctypes
import errno
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chromium.webdriver import ChromiumDriver as SeleniumChromium
from selenium.webdriver.common.by import By

from tests.support.firefox import ENTER, Firefox, MarionetteError, find_firefox, launch_firefox
from tests.support.pages import PageServer

if TYPE_CHECKING:
    from wtframe.server import Server

__all__ = [
    "BROWSERS",
    "CHROMIUM_ARGS",
    "ChromiumDriver",
    "ChromiumRunner",
    "FirefoxRunner",
    "LoopThread",
    "LoopbackNamespace",
    "PageRunner",
    "PageServer",
    "assert_server_idle",
    "browser",
    "browser_name",
    "browser_network",
    "chromium",
    "chromium_runner",
    "find_chromedriver",
    "find_chromium",
    "firefox",
    "firefox_runner",
    "launch_chromium",
    "loopback_network",
    "page_runner",
    "page_server",
    "pytest_collection_modifyitems",
    "run_in_thread",
    "run_page",
]

T = TypeVar("T")
R = TypeVar("R")

BROWSERS: tuple[str, ...] = ("chromium", "firefox")
"""The browsers `page_runner` runs a test in, also the names of their markers."""

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


def _version(binary: str) -> str:
    """The first line `binary --version` prints (standard output only)."""
    try:
        output = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return output.splitlines()[0] if output else "unknown"


class ChromiumDriver(webdriver.Chrome):
    """A Chrome WebDriver that deletes its temporary profile directory when it quits.

    Args:
        profile_dir: The `--user-data-dir` of the browser, removed by [`quit`].
        **kwargs: Passed to `selenium.webdriver.Chrome`.

    Attributes:
        version: What the browser's `--version` printed (set by [`launch_chromium`]).
    """

    def __init__(self, profile_dir: str, **kwargs: Any) -> None:
        self.profile_dir = profile_dir
        self.version = "unknown"
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
        instance = ChromiumDriver(profile_dir, options=options, service=Service(driver))
    except BaseException:
        shutil.rmtree(profile_dir, ignore_errors=True)
        raise
    instance.version = _version(binary)
    return instance


# --- a loopback-only network namespace ----------------------------------------------------

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sh22x")  # struct ifreq: the name, then ifr_flags in the union
_THREAD_NET = "/proc/thread-self/ns/net"


class LoopbackNamespace:
    """A network namespace whose only interface is loopback, entered and left per thread.

    Linux keeps the network namespace per thread: [`entered`] moves the calling thread in
    (and with it every thread and process it starts meanwhile, which stay there), then back
    out. Sockets keep the namespace they were made in. Made by [`create`].
    """

    def __init__(self, libc: ctypes.CDLL, host_fd: int, namespace_fd: int) -> None:
        self._libc = libc
        self._host_fd = host_fd
        self._namespace_fd = namespace_fd
        self._depth: dict[int, int] = {}

    @classmethod
    def create(cls) -> LoopbackNamespace | None:
        """Make the namespace and bring its loopback interface up.

        Returns:
            The namespace, or None when the process may not make one (not root).

        Raises:
            OSError: If making it fails for another reason.
        """
        libc = ctypes.CDLL(None, use_errno=True)
        host_fd = os.open(_THREAD_NET, os.O_RDONLY | os.O_CLOEXEC)
        if libc.unshare(_CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            os.close(host_fd)
            if code in (errno.EPERM, errno.EACCES, errno.ENOSYS, errno.EINVAL):
                return None
            raise OSError(code, f"unshare(CLONE_NEWNET): {os.strerror(code)}")
        try:
            _bring_loopback_up()
            namespace_fd = os.open(_THREAD_NET, os.O_RDONLY | os.O_CLOEXEC)
        finally:
            _setns(libc, host_fd)
        return cls(libc, host_fd, namespace_fd)

    @contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block, in the calling thread, inside the namespace (re-entrant).

        Yields:
            Nothing.
        """
        thread = threading.get_ident()
        depth = self._depth.get(thread, 0)
        if depth == 0:
            _setns(self._libc, self._namespace_fd)
        self._depth[thread] = depth + 1
        try:
            yield
        finally:
            self._depth[thread] = depth
            if depth == 0:
                _setns(self._libc, self._host_fd)

    def close(self) -> None:
        """Forget the namespace (it disappears with the last thread and socket inside)."""
        os.close(self._namespace_fd)
        os.close(self._host_fd)


def _setns(libc: ctypes.CDLL, fd: int) -> None:
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns(CLONE_NEWNET): {os.strerror(code)}")


def _bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = _IFREQ.pack(b"lo", 0)
        flags = _IFREQ.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


@contextmanager
def _inside(namespace: LoopbackNamespace | None) -> Iterator[None]:
    if namespace is None:
        yield
    else:
        with namespace.entered():
            yield


# --- one API for every browser ------------------------------------------------------------


class PageRunner(abc.ABC):
    """One browser behind the API every browser test uses.

    Attributes:
        name: The browser's name, one of [`BROWSERS`].
        title: Its display name.
        version: What the browser's `--version` printed.
        facts: What tests learned about the browser in this run (for example the
            WebTransport dialect a server saw), keyed by a short name.
    """

    name: str
    title: str

    def __init__(self, version: str) -> None:
        self.version = version
        self.facts: dict[str, str] = {}

    # -- what each browser implements --------------------------------------------------

    @abc.abstractmethod
    def open(self, url: str) -> None:
        """Load `url` in the current window and wait for its load event.

        Args:
            url: The page.
        """

    @abc.abstractmethod
    def execute(self, script: str, *args: Any) -> Any:
        """Run a function body in the page and return its value.

        Args:
            script: JavaScript statements; `return` gives the result, `arguments` the args.
            *args: JSON-compatible arguments.

        Returns:
            The value, converted from JavaScript (objects become dicts, arrays lists).
        """

    @abc.abstractmethod
    def text(self, element_id: str) -> str:
        """Return the rendered text of the element with this id.

        Args:
            element_id: The element's `id`.

        Returns:
            The text.
        """

    @abc.abstractmethod
    def click(self, element_id: str) -> None:
        """Click the element with this id like a user.

        Args:
            element_id: The element's `id`.
        """

    @abc.abstractmethod
    def type(self, element_id: str, text: str, *, enter: bool = False) -> None:
        """Type into the element with this id like a user.

        Args:
            element_id: The element's `id`.
            text: The characters to type.
            enter: Press Enter afterwards.
        """

    @abc.abstractmethod
    def console(self) -> list[str]:
        """Return the page console lines logged since the last call."""

    @abc.abstractmethod
    def _window(self) -> str: ...

    @abc.abstractmethod
    def _windows(self) -> list[str]: ...

    @abc.abstractmethod
    def _open_window(self) -> str: ...

    @abc.abstractmethod
    def _switch(self, handle: str) -> None: ...

    @abc.abstractmethod
    def _close_window(self) -> None: ...

    # -- built on those ----------------------------------------------------------------

    def run(self, url: str, *, result_var: str = "__result", timeout: float = 20) -> Any:
        """Load a page and wait until it publishes a result in a global variable.

        Args:
            url: The page to load.
            result_var: The global (`window.<result_var>`) the page sets when it is done.
            timeout: How many seconds to wait for the variable after the page loaded.

        Returns:
            The variable's value, converted from JavaScript.

        Raises:
            ValueError: If `result_var` is not a JavaScript identifier.
            AssertionError: If the variable is still undefined after `timeout` seconds; the
                message holds the page's console log and visible text.
        """
        if not result_var.isidentifier():
            raise ValueError(f"not a JavaScript identifier: {result_var!r}")
        self.console()  # drop messages of earlier pages
        self.open(url)
        script = (
            f"return window.{result_var} === undefined"
            f" ? [false, null] : [true, window.{result_var}];"
        )
        deadline = time.monotonic() + timeout
        while True:
            done, value = self.execute(script)
            if done:
                return value
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        raise AssertionError(self._diagnose(f"{url} did not set window.{result_var}", timeout))

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 20) -> None:
        """Poll `check` until it returns true; browser errors while polling count as false.

        Args:
            check: The condition.
            what: What is awaited, for the failure message.
            timeout: Seconds to wait.

        Raises:
            AssertionError: If `check` is still false after `timeout` seconds; the message
                holds the page's console log and visible text.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (WebDriverException, MarionetteError):
                pass
            time.sleep(0.05)
        raise AssertionError(self._diagnose(f"timed out waiting for {what}", timeout))

    def page_text(self) -> str:
        """Return the visible text of the page."""
        return str(self.execute("return document.body ? document.body.innerText : '';"))

    @contextmanager
    def new_window(self) -> Iterator[None]:
        """Open a new window and make it current; close it and come back afterwards.

        Yields:
            Nothing.
        """
        first = self._window()
        handle = self._open_window()
        self._switch(handle)
        try:
            yield
        finally:
            try:
                self._close_window()
            finally:
                self._switch(first)

    def reset(self) -> None:
        """Close every window but one and load `about:blank`, which ends the pages' sessions."""
        handles = self._windows()
        for handle in handles[1:]:
            self._switch(handle)
            self._close_window()
        self._switch(handles[0])
        self.open("about:blank")
        self.console()

    def _diagnose(self, problem: str, timeout: float) -> str:
        console = "\n".join(self.console()) or "(empty)"
        try:
            body = self.page_text()
        except (WebDriverException, MarionetteError) as exc:
            body = f"(unavailable: {exc})"
        return (
            f"{self.title}: {problem} within {timeout} s\n"
            f"--- console ---\n{console}\n--- page text ---\n{body or '(empty)'}"
        )


class ChromiumRunner(PageRunner):
    """Chromium under chromedriver, through Selenium.

    Args:
        driver: The WebDriver.
        version: What the browser's `--version` printed.
    """

    name = "chromium"
    title = "Chromium"

    def __init__(self, driver: SeleniumChromium, version: str = "unknown") -> None:
        super().__init__(version)
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def execute(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

    def click(self, element_id: str) -> None:
        self.driver.find_element(By.ID, element_id).click()

    def type(self, element_id: str, text: str, *, enter: bool = False) -> None:
        self.driver.find_element(By.ID, element_id).send_keys(text + (ENTER if enter else ""))

    def console(self) -> list[str]:
        get_log: Callable[[str], list[dict[str, Any]]] = self.driver.get_log
        try:
            entries = get_log("browser")
        except WebDriverException:
            return []
        return [f"{entry.get('level')}: {entry.get('message')}" for entry in entries]

    def _window(self) -> str:
        return str(self.driver.current_window_handle)

    def _windows(self) -> list[str]:
        return [str(handle) for handle in self.driver.window_handles]

    def _open_window(self) -> str:
        before = set(self._windows())
        self.driver.switch_to.new_window("window")
        handle = self._window()
        assert handle not in before
        return handle

    def _switch(self, handle: str) -> None:
        self.driver.switch_to.window(handle)

    def _close_window(self) -> None:
        self.driver.close()


class FirefoxRunner(PageRunner):
    """Firefox through Marionette.

    Args:
        browser: The running Firefox.
    """

    name = "firefox"
    title = "Firefox"

    def __init__(self, browser: Firefox) -> None:
        super().__init__(browser.version)
        self.browser = browser

    def open(self, url: str) -> None:
        self.browser.navigate(url)

    def execute(self, script: str, *args: Any) -> Any:
        return self.browser.execute(script, *args)

    def text(self, element_id: str) -> str:
        return self.browser.text(self.browser.find(f"#{element_id}"))

    def click(self, element_id: str) -> None:
        self.browser.click(self.browser.find(f"#{element_id}"))

    def type(self, element_id: str, text: str, *, enter: bool = False) -> None:
        self.browser.send_keys(
            self.browser.find(f"#{element_id}"), text + (ENTER if enter else "")
        )

    def console(self) -> list[str]:
        return self.browser.console()

    def _window(self) -> str:
        return self.browser.window()

    def _windows(self) -> list[str]:
        return self.browser.windows()

    def _open_window(self) -> str:
        return self.browser.new_window()

    def _switch(self, handle: str) -> None:
        self.browser.switch_to(handle)

    def _close_window(self) -> None:
        self.browser.close_window()


def run_page(
    driver: SeleniumChromium,
    url: str,
    *,
    result_var: str = "__result",
    timeout: float = 20,
) -> Any:
    """Load a page in a Selenium-driven Chromium and wait for its result.

    The same as `ChromiumRunner(driver).run(url, ...)`; see [`PageRunner.run`].

    Args:
        driver: The WebDriver to use.
        url: The page to load.
        result_var: The global (`window.<result_var>`) the page sets when it is done.
        timeout: How many seconds to wait for the variable after the page loaded.

    Returns:
        The variable's value, converted from JavaScript (objects become dicts, arrays lists).
    """
    return ChromiumRunner(driver).run(url, result_var=result_var, timeout=timeout)


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


# --- what a server holds after a page -----------------------------------------------------


async def _holdings(server: Server) -> list[str]:
    problems = [f"session runner {runner!r}" for runner in server.runners]
    for connection in list(server.connections):
        held = {
            "session links": len(connection.links),
            "sessions": connection.wt.session_count,
            "WebTransport streams": connection.wt.stream_count,
            "stream objects": len(connection._streams),
        }
        if any(held.values()):
            problems.append(f"connection {id(connection):#x} holds {held}")
    return problems


def assert_server_idle(thread: LoopThread[Any], server: Server, timeout: float = 5) -> None:
    """Wait until a server holds no session and no stream on any connection.

    Connections themselves may stay: Chromium keeps its QUIC connection until the idle
    timeout, and Firefox may keep an idle speculative one. What must be gone is every
    session runner and every session and stream state of every connection.

    Args:
        thread: The loop thread the server runs on.
        server: The server.
        timeout: Seconds to wait.

    Raises:
        AssertionError: If the server still holds something after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        problems = thread.call(_holdings(server))
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    assert not problems, "the server still holds state:\n" + "\n".join(problems)


# --- pytest integration -------------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(reason: str) -> None:
    reason += " (run scripts/install-test-deps.sh)"
    if _in_ci():
        pytest.fail(f"{reason}; browser tests cannot be skipped when CI is set")
    pytest.skip(reason)


_BROWSER_FIXTURES = frozenset(
    {"page_runner", "browser", "chromium", "firefox", "chromium_runner", "firefox_runner"}
)


def _uses_browser(item: pytest.Item) -> bool:
    return not _BROWSER_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a browser fixture with `browser` (before `-m` selects).

    Args:
        items: The collected tests.
    """
    for item in items:
        if _uses_browser(item):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _browser_tests_use_loopback_network(request: pytest.FixtureRequest) -> None:
    """Put every test that uses a browser inside the browser's network namespace."""
    if _uses_browser(request.node):
        request.getfixturevalue("browser_network")


@pytest.fixture(scope="session")
def loopback_network() -> Iterator[LoopbackNamespace | None]:
    """The session's loopback-only network namespace, or None where none can be made.

    Yields:
        The namespace.
    """
    namespace = LoopbackNamespace.create()
    try:
        yield namespace
    finally:
        if namespace is not None:
            namespace.close()


@pytest.fixture
def browser_network(loopback_network: LoopbackNamespace | None) -> Iterator[None]:
    """Run the test's main thread (and what it starts) inside the loopback namespace.

    Yields:
        Nothing.
    """
    with _inside(loopback_network):
        yield


@pytest.fixture(scope="session")
def chromium(loopback_network: LoopbackNamespace | None) -> Iterator[ChromiumDriver]:
    """One headless Chromium shared by every test of the session.

    Skipped when Chromium or chromedriver is missing, except under `CI`, where that fails.

    Yields:
        The WebDriver controlling the browser.
    """
    binary, driver = find_chromium(), find_chromedriver()
    if binary is None or driver is None:
        _missing(("Chromium" if binary is None else "chromedriver") + " is not installed")
    with _inside(loopback_network):
        instance = launch_chromium(binary, driver)
    try:
        yield instance
    finally:
        with _inside(loopback_network):
            instance.quit()


@pytest.fixture(scope="session")
def firefox(loopback_network: LoopbackNamespace | None) -> Iterator[Firefox]:
    """One headless Firefox shared by every test of the session.

    Skipped when Firefox is missing, except under `CI`, where that fails.

    Yields:
        The running browser.
    """
    binary = find_firefox()
    if binary is None:
        _missing("Firefox is not installed")
    with _inside(loopback_network):
        instance = launch_firefox(binary)
    try:
        yield instance
    finally:
        with _inside(loopback_network):
            instance.quit()


@pytest.fixture(scope="session")
def chromium_runner(chromium: ChromiumDriver) -> ChromiumRunner:
    """The shared Chromium as a [`PageRunner`]."""
    return ChromiumRunner(chromium, chromium.version)


@pytest.fixture(scope="session")
def firefox_runner(firefox: Firefox) -> FirefoxRunner:
    """The shared Firefox as a [`PageRunner`]."""
    return FirefoxRunner(firefox)


@pytest.fixture(params=[pytest.param(name, marks=getattr(pytest.mark, name)) for name in BROWSERS])
def browser_name(request: pytest.FixtureRequest) -> str:
    """The browser a test runs in: every test that asks for it runs once per browser."""
    name: str = request.param
    return name


@pytest.fixture
def page_runner(
    request: pytest.FixtureRequest, browser_name: str, browser_network: None
) -> Iterator[PageRunner]:
    """The shared browser named by `browser_name`, reset to one blank window afterwards.

    Yields:
        The browser.
    """
    runner: PageRunner = request.getfixturevalue(f"{browser_name}_runner")
    yield runner
    runner.reset()


@pytest.fixture
def browser(chromium: ChromiumDriver, browser_network: None) -> Iterator[ChromiumDriver]:
    """The shared Chromium for one test, left on `about:blank` afterwards.

    Yields:
        The WebDriver controlling the browser.
    """
    yield chromium
    ChromiumRunner(chromium).reset()


@pytest.fixture
def page_server(browser_network: None) -> Iterator[PageServer]:
    """A running [`PageServer`] with no directory; add pages with `page_server.add()`.

    Yields:
        The server.
    """
    with PageServer() as server:
        yield server
