"""A real headless Chromium for the viewer tests: scripts/js/browser_session.mjs, driven over JSON lines.

One long-lived node process holds one Chromium page (playwright-core, Debian's /usr/bin/chromium or
CIM_CHROMIUM, WebGL 2 on SwiftShader), so a test can mix API calls and browser actions:

    with Browser.launch() as b:
        b.goto(f"{base}/viewer/")
        b.wait_for("window.cim && window.cim.ready")
        assert b.events()["pageErrors"] == []

Every method sends one command and waits for its answer. A command that fails in the browser (an exception in
the page, a selector that never appears, a timeout) raises BrowserError and the session goes on. Browser-side
timeouts are the `timeout` arguments (seconds; default the launch's `timeout`); on top of that each command
gets `grace` seconds more in Python, after which the node process (and its Chromium) is killed and
BrowserError raised, so a hung browser cannot hang pytest. node's stderr (every console message, page error,
blocked or failed request, and each command's timing) goes to `log_path`.

Requests to hosts other than 127.0.0.1/localhost/[::1] are aborted before they leave the machine and listed
by events()["externalRequests"].
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "js" / "browser_session.mjs"
NODE_MODULES = REPO / "node_modules"

_EOF = object()


class BrowserError(RuntimeError):
    """A browser command failed, timed out, or the browser is gone."""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise BrowserError("node is not installed: run `make setup` (scripts/sysdeps.sh installs nodejs)")
    if not (NODE_MODULES / "playwright-core" / "package.json").is_file():
        raise BrowserError(f"{NODE_MODULES / 'playwright-core'} is missing: run `make setup` (npm ci) in {REPO}")
    return node


def _child_groups(pid: int) -> list[int]:
    """Process groups led by direct children of a process (Linux /proc; empty elsewhere or when it is gone)."""
    groups: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for kid in (int(k) for k in (task / "children").read_text().split()):
                try:
                    if os.getpgid(kid) == kid:
                        groups.append(kid)
                except OSError:
                    pass
    except OSError:
        pass
    return groups


class Browser:
    """One Chromium page in a node process (see the module docstring). Use Browser.launch()."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, log_file: IO[bytes], timeout: float, grace: float):
        self._proc = proc
        self._log_file = log_file
        self._lines: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._next_id = 0
        self._closed = False
        self.log_path = log_path
        self.timeout = timeout
        self.grace = grace
        self.version: str | None = None
        self.launch_seconds: float | None = None
        self.stray_output: list[bytes] = []  # lines on node's stdout that were not an answer (should stay empty)
        threading.Thread(target=self._read, name="browser-session-stdout", daemon=True).start()

    # -- life cycle ---------------------------------------------------------------------------------------------

    @classmethod
    def launch(
        cls,
        width: int = 1280,
        height: int = 800,
        timeout: float = 30,
        grace: float = 30,
        launch_timeout: float = 120,
        log_path: Path | str | None = None,
    ) -> Browser:
        """Start node scripts/js/browser_session.mjs with a width x height viewport and wait until Chromium is up.

        `timeout` is the browser-side default of every command (seconds), `grace` what Python adds before it
        kills a session that does not answer. node's stderr goes to `log_path` (a temporary file by default).
        """
        node = _node()
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="cim-browser-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        log_path = Path(log_path).resolve()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "wb")  # node's stderr for the process's lifetime; closed by close()
        cmd = [node, str(SCRIPT), "--width", str(width), "--height", str(height), "--timeout", str(timeout)]
        started = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file)
        except BaseException:
            log_file.close()
            raise
        browser = cls(proc, log_path, log_file, timeout, grace)
        try:
            ready = browser._answer(None, "launch", launch_timeout)
        except BrowserError as err:
            browser._kill()
            raise BrowserError(f"{err}\nlog {log_path}:\n{browser.log_tail()}") from None
        except BaseException:
            browser._kill()
            raise
        browser.version = ready.get("version")
        browser.launch_seconds = round(time.monotonic() - started, 2)
        return browser

    def close(self) -> None:
        """Close Chromium and end the node process (idempotent)."""
        if self._closed:
            return
        try:
            if self._proc.poll() is None:
                try:
                    self.command("close", _python_timeout=30)
                except BrowserError:
                    pass
                try:
                    self._proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._kill()
        finally:
            self._finish()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._proc.poll() is None:
            self._proc.kill()

    @property
    def alive(self) -> bool:
        return not self._closed and self._proc.poll() is None

    @property
    def pid(self) -> int:
        """The node process's id."""
        return self._proc.pid

    def log_tail(self, chars: int = 4000) -> str:
        """The end of node's stderr log."""
        try:
            self._log_file.flush()
        except (OSError, ValueError):
            pass
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode("utf-8", "replace")

    # -- commands -----------------------------------------------------------------------------------------------

    def goto(self, url: str, wait_until: str = "load", timeout: float | None = None) -> dict:
        """Navigate; returns {"url", "status"}. wait_until: load, domcontentloaded, networkidle or commit."""
        return self.command("goto", url=url, waitUntil=wait_until, **self._t(timeout))

    def evaluate(self, expression: str, arg: Any = None, timeout: float | None = None) -> Any:
        """The value of a JS expression in the page (JSON round trip). `arg` (JSON) is bound to `arg`; a promise
        is awaited and `await` may be used; an expression that yields a function is called with `arg`."""
        return self.command("evaluate", expression=expression, arg=arg, **self._t(timeout))

    def wait_for(self, expression: str, arg: Any = None, timeout: float = 30, polling: float | None = None) -> Any:
        """Re-evaluate `expression` until it is truthy and return that value. `polling`: seconds between checks
        (default: every animation frame). A promise counts as truthy and is awaited."""
        params: dict[str, Any] = {"expression": expression, "arg": arg, **self._t(timeout)}
        if polling is not None:
            params["polling"] = max(1, round(polling * 1000))
        return self.command("wait_for", **params)

    def mouse(
        self,
        action: str,
        x: float | None = None,
        y: float | None = None,
        button: str = "left",
        delta_x: float = 0,
        delta_y: float = 0,
        steps: int = 1,
    ) -> None:
        """move | down | up | click | dblclick | wheel at viewport pixel (x, y); down/up/wheel move there first
        when x and y are given. `steps` interpolates moves (drags)."""
        params: dict[str, Any] = {"action": action, "button": button, "deltaX": delta_x, "deltaY": delta_y}
        params["steps"] = steps
        if x is not None and y is not None:
            params.update(x=x, y=y)
        self.command("mouse", **params)

    def click(self, selector: str, timeout: float | None = None) -> None:
        self.command("click", selector=selector, **self._t(timeout))

    def fill(self, selector: str, value: str, timeout: float | None = None) -> None:
        self.command("fill", selector=selector, value=value, **self._t(timeout))

    def press(self, key: str, selector: str | None = None, timeout: float | None = None) -> None:
        """Press a key (e.g. "Enter", "Control+A") in `selector`, or wherever the focus is without one."""
        params: dict[str, Any] = {"key": key, **self._t(timeout)}
        if selector is not None:
            params["selector"] = selector
        self.command("press", **params)

    def select(self, selector: str, value: str | list[str], timeout: float | None = None) -> list[str]:
        """Choose option(s) of a <select> by value; returns the selected values."""
        return self.command("select", selector=selector, value=value, **self._t(timeout))

    def text(self, selector: str, timeout: float | None = None) -> str:
        """innerText of the first match (waits for it to exist)."""
        return self.command("text", selector=selector, **self._t(timeout))

    def count(self, selector: str) -> int:
        """How many elements match now."""
        return self.command("count", selector=selector)

    def visible(self, selector: str) -> bool:
        """Whether the first match is visible now (False when nothing matches)."""
        return self.command("visible", selector=selector)

    def screenshot(self, path: Path | str, full_page: bool = False, timeout: float | None = None) -> Path:
        """Save a PNG of the viewport (or the whole page); parent directories are created."""
        result = self.command("screenshot", path=str(Path(path).resolve()), fullPage=full_page, **self._t(timeout))
        return Path(result["path"])

    def events(self, clear: bool = False) -> dict:
        """What the page did since launch (or the last clear): {"consoleErrors": [{"text", "location"}],
        "pageErrors": [{"message", "stack"}], "externalRequests": [url], "failedRequests": [{"url", "error"}],
        "badResponses": [{"url", "status"}], "requests": n}."""
        return self.command("events", clear=clear)

    def command(self, cmd: str, _python_timeout: float | None = None, **params: Any) -> Any:
        """Send any command of browser_session.mjs and return its result (BrowserError when it fails)."""
        if self._closed:
            raise BrowserError(f"{cmd}: the browser is closed")
        if _python_timeout is None:
            browser_side = params.get("timeout")
            _python_timeout = (browser_side / 1000 if browser_side is not None else self.timeout) + self.grace
        with self._lock:
            self._next_id += 1
            cid = self._next_id
            line = json.dumps({"id": cid, "cmd": cmd, **params}, allow_nan=False).encode() + b"\n"
            try:
                self._proc.stdin.write(line)
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as err:
                self._finish()
                raise BrowserError(
                    f"{cmd}: the browser session is gone ({err}); log {self.log_path}:\n{self.log_tail()}"
                ) from err
            return self._answer(cid, cmd, _python_timeout)

    # -- internals ----------------------------------------------------------------------------------------------

    @staticmethod
    def _t(timeout: float | None) -> dict[str, int]:
        return {} if timeout is None else {"timeout": max(0, round(timeout * 1000))}

    def _read(self) -> None:
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(_EOF)

    def _answer(self, cid: int | None, cmd: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._kill()
                raise BrowserError(
                    f"{cmd}: no answer from the browser in {timeout:g} s; session killed; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                ) from None
            if line is _EOF:
                rc = self._proc.wait()
                self._finish()
                raise BrowserError(f"{cmd}: the browser session exited ({rc}); log {self.log_path}:\n{self.log_tail()}")
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                self.stray_output.append(line)
                continue
            if not isinstance(msg, dict) or msg.get("id") != cid:
                self.stray_output.append(line)
                continue
            if msg.get("ok"):
                return msg.get("result")
            raise BrowserError(f"{cmd}: {msg.get('error')}")

    def _kill(self) -> None:
        """End the session now: SIGTERM (node closes Chromium), SIGKILL after 5 s, then any Chromium left."""
        proc = self._proc
        if proc.poll() is None:
            groups = _child_groups(proc.pid)  # Chromium leads its own group (playwright launches it detached)
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for group in groups:
                try:
                    os.killpg(group, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in (self._proc.stdin,):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log_file.close()
