"""Driving headless Firefox through Marionette, the remote protocol built into Firefox.

Debian ships no geckodriver, but every Firefox has Marionette: started with `--marionette`,
it listens on a loopback TCP port and takes WebDriver commands as JSON. [`Marionette`]
speaks that protocol directly (a few dozen lines, no extra package); [`launch_firefox`]
starts a headless Firefox with a fresh profile and returns a [`Firefox`] to drive it.

The profile keeps the browser quiet and offline: no telemetry, updates, studies, safe
browsing, captive-portal or connectivity checks, and Remote Settings pointed at an empty
`data:` URL (which Firefox honours only with `MOZ_REMOTE_SETTINGS_DEVTOOLS=1`, set here).
Marionette binds port 0 and writes the real port to `MarionetteActivePort` in the profile.
The page's console goes to the browser's standard output, read back by
[`Firefox.console`].
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ELEMENT_KEY",
    "ENTER",
    "FIREFOX_PREFS",
    "Firefox",
    "Marionette",
    "MarionetteError",
    "find_firefox",
    "launch_firefox",
]

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"
"""The key under which WebDriver returns an element reference."""

ENTER = "\ue007"
"""The WebDriver key code of Enter, for [`Firefox.send_keys`]."""

FIREFOX_PREFS: dict[str, bool | int | str] = {
    "marionette.port": 0,
    "devtools.console.stdout.content": True,
    "app.normandy.api_url": "",
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "app.update.disabledForTesting": True,
    "browser.discovery.enabled": False,
    "browser.ml.enable": False,
    "browser.newtabpage.enabled": False,
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "browser.search.update": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.topsites.contile.enabled": False,
    "browser.uitour.enabled": False,
    "captivedetect.canonicalURL": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.usage.uploadEnabled": False,
    "doh-rollout.disable-heuristics": True,
    "extensions.blocklist.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.update.enabled": False,
    "geo.provider.network.url": "",
    "identity.fxaccounts.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-manager.url": "",
    "messaging-system.rsexperimentloader.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.trr.mode": 5,
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.bhrPing.enabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.firstShutdownPing.enabled": False,
    "toolkit.telemetry.newProfilePing.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.shutdownPingSender.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.updatePing.enabled": False,
}
"""Preferences written to the fresh profile's `user.js`."""

FIREFOX_ENV: dict[str, str] = {
    "MOZ_REMOTE_SETTINGS_DEVTOOLS": "1",
    "MOZ_CRASHREPORTER_DISABLE": "1",
    "MOZ_HEADLESS": "1",
}
"""Environment variables of every launched Firefox."""

_BROWSER_NAMES = ("firefox-esr", "firefox")


def find_firefox() -> str | None:
    """Locate a Firefox executable.

    The `FIREFOX_BIN` environment variable wins; then `/usr/bin/firefox-esr`; then
    `firefox-esr` and `firefox` on `PATH`.

    Returns:
        The executable's path, or None if there is none.
    """
    configured = os.environ.get("FIREFOX_BIN")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access("/usr/bin/firefox-esr", os.X_OK):
        return "/usr/bin/firefox-esr"
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class MarionetteError(Exception):
    """A Marionette command failed.

    Attributes:
        error: The WebDriver error code, for example `no such element`.
        message: The browser's explanation.
    """

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message


class Marionette:
    """A client of the Marionette protocol: numbered JSON commands over one TCP connection.

    Every message is `<length>:<JSON>`. The browser first sends a greeting; then each
    command `[0, id, name, params]` is answered by `[1, id, error, result]`.

    Args:
        port: The port Firefox listens on.
        host: The address it listens on.
        timeout: Seconds to wait for any answer.

    Raises:
        ConnectionError: If the greeting is not a Marionette greeting.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 60) -> None:
        self._socket = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""
        self._last_id = 0
        greeting = self._receive()
        if not isinstance(greeting, dict) or greeting.get("marionetteProtocol") != 3:
            self._socket.close()
            raise ConnectionError(f"not a Marionette protocol 3 greeting: {greeting!r}")

    def command(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send a command and wait for its answer.

        Args:
            name: The command, for example `WebDriver:Navigate`.
            params: Its parameters.

        Returns:
            The command's result (commands that produce a value wrap it in `{"value": ...}`).

        Raises:
            MarionetteError: If the browser reports an error.
        """
        self._last_id += 1
        data = json.dumps([0, self._last_id, name, dict(params or {})]).encode()
        self._socket.sendall(b"%d:%s" % (len(data), data))
        while True:
            message = self._receive()
            if isinstance(message, list) and message[:2] == [1, self._last_id]:
                break
        error, result = message[2], message[3]
        if error:
            raise MarionetteError(str(error.get("error")), str(error.get("message")))
        return result

    def _receive(self) -> Any:
        while b":" not in self._buffer:
            self._fill()
        length, _, self._buffer = self._buffer.partition(b":")
        size = int(length)
        while len(self._buffer) < size:
            self._fill()
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return json.loads(body)

    def _fill(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise ConnectionError("Marionette closed the connection")
        self._buffer += chunk

    def close(self) -> None:
        """Close the connection."""
        self._socket.close()


class Firefox:
    """A running headless Firefox under Marionette control. Made by [`launch_firefox`].

    Attributes:
        process: The browser process (leader of its own process group).
        directory: The temporary directory holding the profile and the output log.
        marionette: The protocol client.
        version: What `firefox --version` printed, for example `Mozilla Firefox 153.7.0esr`.
        capabilities: The WebDriver session's capabilities.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        directory: Path,
        marionette: Marionette,
        version: str,
    ) -> None:
        self.process = process
        self.directory = directory
        self.marionette = marionette
        self.version = version
        self._log_offset = 0
        result = marionette.command(
            "WebDriver:NewSession",
            {"pageLoadStrategy": "normal", "timeouts": {"script": 60000, "pageLoad": 60000}},
        )
        self.capabilities: dict[str, Any] = result["capabilities"]

    @property
    def log_path(self) -> Path:
        """The file that receives the browser's standard output and error."""
        return self.directory / "firefox.log"

    def navigate(self, url: str) -> None:
        """Load `url` in the current window and wait for its load event.

        Args:
            url: The address (http, https, about; Marionette refuses top-level `data:`).
        """
        self.marionette.command("WebDriver:Navigate", {"url": url})

    def execute(self, script: str, *args: Any) -> Any:
        """Run a function body in the page (it sees the page's globals) and return its value.

        Args:
            script: JavaScript statements; `return` gives the result, `arguments` the args.
            *args: JSON-compatible arguments, or element references.

        Returns:
            The returned value converted to Python.
        """
        result = self.marionette.command(
            "WebDriver:ExecuteScript", {"script": script, "args": list(args), "sandbox": None}
        )
        return result["value"]

    def find(self, css: str) -> str:
        """Find an element.

        Args:
            css: A CSS selector.

        Returns:
            The element's reference.
        """
        result = self.marionette.command(
            "WebDriver:FindElement", {"using": "css selector", "value": css}
        )
        return str(result["value"][ELEMENT_KEY])

    def text(self, element: str) -> str:
        """Return an element's rendered text.

        Args:
            element: A reference from [`find`].

        Returns:
            The text.
        """
        return str(self.marionette.command("WebDriver:GetElementText", {"id": element})["value"])

    def click(self, element: str) -> None:
        """Click an element like a user.

        Args:
            element: A reference from [`find`].
        """
        self.marionette.command("WebDriver:ElementClick", {"id": element})

    def send_keys(self, element: str, keys: str) -> None:
        """Type into an element like a user ([`ENTER`] presses Enter).

        Args:
            element: A reference from [`find`].
            keys: The characters to type.
        """
        self.marionette.command("WebDriver:ElementSendKeys", {"id": element, "text": keys})

    def window(self) -> str:
        """Return the handle of the current window."""
        return str(self.marionette.command("WebDriver:GetWindowHandle")["value"])

    def windows(self) -> list[str]:
        """Return the handles of every open window."""
        return [str(handle) for handle in self.marionette.command("WebDriver:GetWindowHandles")]

    def new_window(self) -> str:
        """Open a new window (not switching to it) and return its handle."""
        return str(self.marionette.command("WebDriver:NewWindow", {"type": "window"})["handle"])

    def switch_to(self, handle: str) -> None:
        """Make a window the current one.

        Args:
            handle: The window's handle.
        """
        self.marionette.command("WebDriver:SwitchToWindow", {"handle": handle, "focus": True})

    def close_window(self) -> None:
        """Close the current window (switch to another one afterwards)."""
        self.marionette.command("WebDriver:CloseWindow")

    def console(self) -> list[str]:
        """Return the page console lines printed since the last call.

        Returns:
            Lines such as `console.log: "hello"`.
        """
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                data = log.read()
        except OSError:
            return []
        complete = data.rfind(b"\n") + 1
        self._log_offset += complete
        lines = data[:complete].decode(errors="replace").splitlines()
        return [line for line in lines if line.startswith(("console.", "JavaScript "))]

    def quit(self, timeout: float = 10) -> None:
        """Stop the browser and delete its profile.

        Args:
            timeout: Seconds to wait for a clean exit before the process group is killed.
        """
        try:
            try:
                self.marionette.command("Marionette:Quit", {"flags": ["eForceQuit"]})
            except (OSError, MarionetteError):
                pass
            self.marionette.close()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.process)
            _kill_group(self.process)  # content processes that outlived the parent
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _version(binary: str) -> str:
    try:
        output = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return output.strip().splitlines()[0] if output.strip() else "unknown"


def launch_firefox(
    binary: str | None = None,
    *,
    prefs: Mapping[str, bool | int | str] | None = None,
    timeout: float = 60,
) -> Firefox:
    """Start headless Firefox with a fresh, quiet profile and open a Marionette session.

    Call `quit()` to stop it; that also deletes the profile.

    Args:
        binary: The Firefox executable; found with [`find_firefox`] when omitted.
        prefs: Preferences added to (or overriding) [`FIREFOX_PREFS`].
        timeout: Seconds the browser may take to start listening.

    Returns:
        The running browser.

    Raises:
        FileNotFoundError: If no Firefox can be found.
        RuntimeError: If Firefox exits or does not open Marionette within `timeout`.
    """
    binary = binary or find_firefox()
    if binary is None:
        raise FileNotFoundError("no Firefox executable found (set FIREFOX_BIN)")
    version = _version(binary)
    directory = Path(tempfile.mkdtemp(prefix="firefox-"))
    profile = directory / "profile"
    profile.mkdir()
    settings = {**FIREFOX_PREFS, **(prefs or {})}
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in settings.items())
    )
    command = [binary, "--headless", "--no-remote", "--marionette", "--profile", str(profile)]
    with (directory / "firefox.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FIREFOX_ENV},
            start_new_session=True,
        )
    try:
        port = _wait_for_port(profile / "MarionetteActivePort", process, timeout)
        return Firefox(process, directory, Marionette(port), version)
    except BaseException as exc:
        _kill_group(process)
        output = (directory / "firefox.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(directory, ignore_errors=True)
        if not isinstance(exc, Exception):
            raise
        raise RuntimeError(f"Firefox did not start ({exc}):\n{output}") from exc


def _wait_for_port(path: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Firefox exited with status {process.returncode}")
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise RuntimeError(f"Marionette did not start within {timeout} s")
