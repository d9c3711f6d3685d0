"""The browser driver itself (tests/viewer/browser.py + scripts/js/browser_session.mjs) against a tiny local site."""

from __future__ import annotations

import functools
import json
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.viewer.browser import Browser, BrowserError

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>driver test</title><link rel="icon" href="data:,"></head>
<body>
<button id="go" style="position:absolute;left:100px;top:100px;width:120px;height:40px">go</button>
<p id="out">not clicked</p>
<input id="name"><p id="greeting"></p>
<select id="colour"><option value="red">Red</option><option value="green">Green</option></select>
<p id="hidden" style="display:none">hidden</p>
<ul><li>a</li><li>b</li><li>c</li></ul>
<script>
let clicks = 0;
document.getElementById('go').addEventListener('click', () => {
  clicks++;
  document.getElementById('out').textContent = 'clicked ' + clicks;
});
document.getElementById('name').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') document.getElementById('greeting').textContent = 'hello ' + e.target.value;
});
setTimeout(() => { window.later = {answer: 42}; }, 300);
</script>
</body></html>
"""

NOISY = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>
<script>
console.error('boom from console.error');
setTimeout(() => { throw new Error('uncaught boom'); }, 0);
</script>
</body></html>
"""

EXTERNAL = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>
<img id="remote" src="http://example.com/x.png">
<img id="local" src="/pixel.png">
</body></html>
"""

MISSING = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>
<script src="/missing.js"></script>
</body></html>
"""

# A 1x1 transparent PNG.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """http://127.0.0.1:PORT serving a few pages from a temporary directory."""
    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "noisy.html").write_text(NOISY)
    (tmp_path / "external.html").write_text(EXTERNAL)
    (tmp_path / "missing.html").write_text(MISSING)
    (tmp_path / "data.json").write_text(json.dumps({"name": "district", "items": [1, 2, 3]}))
    (tmp_path / "pixel.png").write_bytes(PIXEL)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_evaluate_returns_values_and_awaits_promises(browser: Browser, site: str):
    assert browser.goto(f"{site}/index.html") == {"url": f"{site}/index.html", "status": 200}
    assert browser.evaluate("1 + 2") == 3
    assert browser.evaluate("document.title") == "driver test"
    assert browser.evaluate("arg.a * 2", {"a": 21}) == 42
    assert browser.evaluate("(x) => x.map((v) => v + 1)", [1, 2]) == [2, 3]
    assert browser.evaluate("undefined") is None
    slow = "new Promise((resolve) => setTimeout(() => resolve({x: [1, 'two', null], ok: true}), 200))"
    assert browser.evaluate(slow) == {"x": [1, "two", None], "ok": True}
    # await inside the expression, and the page's own HTTP requests to the local server
    assert browser.evaluate("(await fetch('/data.json')).json()") == {"name": "district", "items": [1, 2, 3]}
    assert browser.events()["requests"] >= 2  # the page and data.json


def test_wait_for_returns_the_truthy_value_or_times_out(browser: Browser, site: str):
    browser.goto(f"{site}/index.html")
    assert browser.wait_for("window.later", timeout=10) == {"answer": 42}
    assert browser.wait_for("window.later.answer === arg && 'yes'", arg=42, polling=0.05) == "yes"
    t = time.monotonic()
    with pytest.raises(BrowserError, match="Timeout 500ms exceeded"):
        browser.wait_for("window.never", timeout=0.5)
    assert time.monotonic() - t < 10
    assert browser.evaluate("1") == 1


def test_console_errors_and_uncaught_exceptions_are_recorded(browser: Browser, site: str):
    browser.goto(f"{site}/noisy.html")
    browser.evaluate("new Promise((resolve) => setTimeout(resolve, 100))")  # let the setTimeout throw
    ev = browser.events()
    assert [e["text"] for e in ev["consoleErrors"]] == ["boom from console.error"]
    assert ev["consoleErrors"][0]["location"]["url"] == f"{site}/noisy.html"
    assert [e["message"] for e in ev["pageErrors"]] == ["uncaught boom"]
    assert "uncaught boom" in ev["pageErrors"][0]["stack"]
    assert ev["externalRequests"] == [] and ev["failedRequests"] == [] and ev["badResponses"] == []
    # clear=True hands over what was recorded and starts afresh
    assert browser.events(clear=True)["pageErrors"] == ev["pageErrors"]
    after = browser.events()
    assert after["consoleErrors"] == [] and after["pageErrors"] == [] and after["requests"] == 0
    assert "boom from console.error" in browser.log_tail()


def test_http_errors_are_bad_responses(browser: Browser, site: str):
    browser.goto(f"{site}/missing.html")
    ev = browser.events()
    assert ev["badResponses"] == [{"url": f"{site}/missing.js", "status": 404}]
    assert ev["pageErrors"] == []


def test_external_requests_are_blocked_and_recorded(browser: Browser, site: str):
    browser.goto(f"{site}/external.html")
    # the remote image never loads, the local one does
    assert browser.evaluate("[...document.images].map((i) => [i.id, i.complete, i.naturalWidth])") == [
        ["remote", True, 0],
        ["local", True, 1],
    ]
    # a fetch to an unroutable documentation address (192.0.2.0/24) fails at once: it is aborted in the
    # browser, it never waits on a connection
    t = time.monotonic()
    error = browser.evaluate("fetch('http://192.0.2.1/data.json').then(() => 'fetched', (e) => String(e))")
    assert error.startswith("TypeError")
    assert time.monotonic() - t < 5
    # so is a WebSocket to another host: it closes without connecting
    closed = browser.evaluate(
        """new Promise((resolve) => {
          const ws = new WebSocket('wss://example.org/live');
          ws.onopen = () => resolve('opened');
          ws.onclose = (e) => resolve('closed ' + e.code);
        })"""
    )
    assert closed.startswith("closed")
    ev = browser.events()
    assert ev["externalRequests"] == [
        "http://example.com/x.png",
        "http://192.0.2.1/data.json",
        "wss://example.org/live",
    ]
    # blocked requests are not also reported as failed ones, nor as console errors
    assert ev["failedRequests"] == [] and ev["badResponses"] == [] and ev["consoleErrors"] == []
    # navigating away is blocked as well
    with pytest.raises(BrowserError, match="ERR_BLOCKED_BY_CLIENT"):
        browser.goto("https://example.com/")
    assert browser.events()["externalRequests"][-1] == "https://example.com/"
    assert browser.goto(f"{site}/index.html")["status"] == 200


def test_clicks_keys_and_forms_change_the_dom(browser: Browser, site: str):
    browser.goto(f"{site}/index.html")
    browser.click("#go")
    assert browser.text("#out") == "clicked 1"
    browser.mouse("click", 160, 120)  # the middle of the button, in viewport pixels
    assert browser.text("#out") == "clicked 2"
    browser.mouse("move", 110, 110)
    browser.mouse("down")
    browser.mouse("up")
    assert browser.text("#out") == "clicked 3"
    browser.fill("#name", "Zhanjiang")
    browser.press("Enter", selector="#name")
    assert browser.text("#greeting") == "hello Zhanjiang"
    assert browser.select("#colour", "green") == ["green"]
    assert browser.evaluate("document.getElementById('colour').value") == "green"
    assert browser.count("li") == 3
    assert browser.count(".nothing") == 0
    assert browser.visible("#go") is True
    assert browser.visible("#hidden") is False
    assert browser.visible(".nothing") is False
    browser.mouse("wheel", 160, 120, delta_y=100)


def test_screenshot_is_a_png_of_the_viewport(browser: Browser, site: str, artifacts: Path):
    browser.goto(f"{site}/index.html")
    shot = browser.screenshot(artifacts / "driver" / "index.png")
    assert shot == artifacts / "driver" / "index.png"
    assert png_size(shot) == (1280, 800)


def test_launch_size_and_context_manager(site: str, tmp_path: Path):
    with Browser.launch(width=640, height=480, log_path=tmp_path / "b.log") as b:
        assert b.alive and b.version
        b.goto(f"{site}/index.html")
        assert b.evaluate("[innerWidth, innerHeight, devicePixelRatio]") == [640, 480, 1]
        assert png_size(b.screenshot(tmp_path / "shots" / "small.png")) == (640, 480)
    assert not b.alive
    assert "Chromium" in (tmp_path / "b.log").read_text()
    with pytest.raises(BrowserError, match="closed"):
        b.evaluate("1")


def test_bad_commands_raise_and_the_session_goes_on(browser: Browser, site: str):
    browser.goto(f"{site}/index.html")
    with pytest.raises(BrowserError, match="SyntaxError"):
        browser.evaluate("1 +* 2")
    with pytest.raises(BrowserError, match="kaput"):
        browser.evaluate("(() => { throw new Error('kaput'); })()")
    with pytest.raises(BrowserError, match="kaput"):
        browser.evaluate("Promise.reject(new Error('kaput'))")
    with pytest.raises(BrowserError, match="Timeout"):
        browser.click("#does-not-exist", timeout=0.5)
    with pytest.raises(BrowserError, match="no result in 500 ms"):
        browser.evaluate("new Promise(() => {})", timeout=0.5)
    with pytest.raises(BrowserError, match="unknown command"):
        browser.command("teleport")
    with pytest.raises(BrowserError, match='missing parameter "selector"'):
        browser.command("click")
    with pytest.raises(BrowserError, match="unknown mouse action"):
        browser.mouse("juggle", 1, 1)
    assert browser.evaluate("1 + 1") == 2
    assert browser.text("#out") == "not clicked"
    assert browser.stray_output == []


def test_a_session_that_stops_answering_is_killed(site: str, tmp_path: Path):
    b = Browser.launch(timeout=1, grace=1, log_path=tmp_path / "b.log")
    try:
        b.goto(f"{site}/index.html")
        chromium_group = [int(k) for k in Path(f"/proc/{b.pid}/task/{b.pid}/children").read_text().split()]
        os.kill(b.pid, signal.SIGSTOP)  # node hangs: no answer will come
        t = time.monotonic()
        with pytest.raises(BrowserError, match="no answer from the browser in 2 s; session killed"):
            b.evaluate("1")
        assert time.monotonic() - t < 15
        assert not b.alive
        with pytest.raises(BrowserError, match="closed"):
            b.evaluate("1")
        time.sleep(1)
        for pid in chromium_group:  # and its Chromium is gone too
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        b.close()


def test_webgl2_is_available(browser: Browser, site: str):
    browser.goto(f"{site}/index.html")
    assert browser.evaluate("!!document.createElement('canvas').getContext('webgl2')") is True
    gl = browser.evaluate(
        """(() => {
          const gl = document.createElement('canvas').getContext('webgl2');
          const info = gl.getExtension('WEBGL_debug_renderer_info');
          return {version: gl.getParameter(gl.VERSION),
                  renderer: info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)};
        })()"""
    )
    assert gl["version"].startswith("WebGL 2.0")
    assert "SwiftShader" in gl["renderer"]


def test_a_session_that_dies_raises(site: str, tmp_path: Path):
    b = Browser.launch(log_path=tmp_path / "b.log")
    try:
        assert b.evaluate("1") == 1
        os.kill(b.pid, signal.SIGKILL)
        with pytest.raises(BrowserError, match="the browser session (is gone|exited)"):
            for _ in range(3):  # the first write may still land in the pipe before node is reaped
                b.evaluate("1")
        assert not b.alive
    finally:
        b.close()
