"""Drive a headless Chromium over the DevTools protocol (no driver, no extra package: aiohttp's websocket).

Used by the report's browser test and `benchmarks/bench_report.py`:

    with HeadlessChromium() as browser:
        browser.open(path)                     # waits for the load event
        browser.evaluate("document.title")
        browser.click("#rows tbody tr")        # a real mouse click at the element's centre
        browser.screenshot(png_path)
        browser.errors                         # console errors and uncaught exceptions seen so far

Chromium comes from Debian's `chromium` package (installed by setup.sh); `AGENTKD_CHROMIUM` names another
binary. `find_chromium()` returns None when there is none, so a test can skip with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """The Chromium binary to drive: $AGENTKD_CHROMIUM, else the first of CANDIDATES on PATH."""
    given = os.environ.get("AGENTKD_CHROMIUM")
    if given:
        return given if shutil.which(given) else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class HeadlessChromium:
    """One headless Chromium with one page, driven synchronously (each call runs the event loop briefly)."""

    def __init__(self, binary: str | None = None, width: int = 1400, height: int = 1000, timeout_s: float = 30.0) -> None:
        self.binary = binary or find_chromium()
        if not self.binary:
            raise RuntimeError("no Chromium found (install Debian's `chromium` package or set AGENTKD_CHROMIUM)")
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self.errors: list[str] = []
        self.console: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._loop = asyncio.new_event_loop()
        self._profile = tempfile.mkdtemp(prefix="agentkd-chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._session: Any = None
        self._socket: Any = None
        self._reader: asyncio.Task[None] | None = None

    # lifecycle ---------------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        args = [self.binary, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
                "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
                "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}", "--hide-scrollbars", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its own sandbox
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{self.binary} did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self._run(self._connect(port))
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Log.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height, deviceScaleFactor=1,
                  mobile=False)

    def close(self) -> None:
        try:
            if self._socket is not None:
                self._run(self._disconnect())
        finally:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._loop.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    # commands ----------------------------------------------------------------------------------------------------
    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self._run(self._send(method, params))

    def open(self, path: str | Path, fragment: str = "") -> float:
        """Navigate to a file (or URL), with an optional #fragment, and wait for its load event; returns the seconds
        it took."""
        url = Path(path).resolve().as_uri() if not str(path).startswith(("file:", "http:", "https:", "about:")) else str(path)
        url += f"#{fragment}" if fragment else ""
        self._events.clear()
        started = time.perf_counter()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")
        return time.perf_counter() - started

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression!r} threw: {_describe_exception(reply['exceptionDetails'])}")
        return reply.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float | None = None) -> Any:
        """Poll until a JavaScript expression is truthy; returns its value."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                seen = f"; JavaScript errors: {self.errors}" if self.errors else ""
                raise TimeoutError(f"waited {timeout_s or self.timeout_s} s for {expression}{seen}")
            self._run(asyncio.sleep(0.05))

    def click(self, selector: str) -> None:
        """Scroll the first element matching `selector` into view and click its centre with the mouse."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        if not box:
            raise LookupError(f"nothing matches {selector!r}")
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {"button": "left", "clickCount": 1} if kind != "mouseMoved" else {}
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def screenshot(self, path: str | Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            height = self.evaluate("document.documentElement.scrollHeight")
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
        data = self.send("Page.captureScreenshot", **params)["data"]
        out = Path(path)
        out.write_bytes(base64.b64decode(data))
        return out

    def wait_event(self, method: str, timeout_s: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for n, (name, params) in enumerate(self._events):
                if name == method:
                    del self._events[: n + 1]
                    return params
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout_s or self.timeout_s} s")
            self._run(asyncio.sleep(0.02))

    # the websocket -------------------------------------------------------------------------------------------------
    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(coroutine, self.timeout_s))

    async def _connect(self, port: int) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as reply:
            targets = await reply.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        self._socket = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())

    async def _disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._socket.close()
        await self._session.close()
        self._socket = None

    async def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending[ident] = future
        await self._socket.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        return await future

    async def _read(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    if "error" in data:
                        future.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                    else:
                        future.set_result(data.get("result", {}))
                continue
            method, params = data.get("method", ""), data.get("params", {})
            self._events.append((method, params))
            self._watch(method, params)

    def _watch(self, method: str, params: dict[str, Any]) -> None:
        """Keep every console message; count errors (console.error, uncaught exceptions, error log entries)."""
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
            if params.get("type") in ("error", "assert"):
                self.errors.append(f"console.{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            self.errors.append("uncaught: " + _describe_exception(params.get("exceptionDetails", {})))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                self.errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())


def _describe_exception(details: dict[str, Any]) -> str:
    exception = details.get("exception") or {}
    where = f" at {details.get('url', '')}:{details.get('lineNumber', '?')}:{details.get('columnNumber', '?')}"
    return (exception.get("description") or details.get("text") or "unknown error") + where
