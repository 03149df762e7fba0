"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for the dashboard's
browser test: open a page, run script in it, type into a field, click where a button is, take a
screenshot. Only aiohttp (a websocket) on our side; the browser is the real one."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import tempfile
from pathlib import Path

import aiohttp

LISTENING = re.compile(r"DevTools listening on (ws://[^\s]+)")
START_TIMEOUT_S = 60.0


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, width: int = 1400, height: int = 1000):
        self._size = (width, height)
        self._ids = itertools.count(1)
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="costmesh-chromium-", ignore_cleanup_errors=True)

    async def __aenter__(self) -> Browser:
        path = shutil.which("chromium")
        assert path, "chromium is not installed: bash scripts/test_tools.sh (apt-get install -y chromium)"
        log = Path(self._dir.name) / "stderr.log"
        with open(log, "wb") as err:
            self._process = await asyncio.create_subprocess_exec(
                path, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                "--remote-debugging-port=0", f"--user-data-dir={self._dir.name}/profile",
                f"--window-size={self._size[0]},{self._size[1]}", "about:blank",
                stdout=asyncio.subprocess.DEVNULL, stderr=err)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while not (match := LISTENING.search(log.read_text(errors="replace"))):
            if self._process.returncode is not None or loop.time() > deadline:
                raise BrowserError(f"chromium did not start: {log.read_text(errors='replace')[-2000:]}")
            await asyncio.sleep(0.1)
        port = int(match.group(1).split(":")[2].split("/")[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as reply:
            targets = await reply.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        return self

    async def __aexit__(self, *_exc) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._dir.cleanup()

    async def send(self, method: str, **params) -> dict:
        """One DevTools command; its result (events in between are skipped)."""
        assert self._ws is not None
        command_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": command_id, "method": method, "params": params}))
        while True:
            message = await asyncio.wait_for(self._ws.receive(), 60)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise BrowserError(f"the DevTools connection closed: {message.type}")
            data = json.loads(message.data)
            if data.get("id") == command_id:
                if "error" in data:
                    raise BrowserError(f"{method}: {data['error']}")
                return data.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 30.0):
        """Polls `expression` in the page until it is truthy; its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise BrowserError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.2)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'")

    async def type_into(self, selector: str, text: str) -> None:
        """Focus the field, select what it holds and type `text` over it, as a keyboard would."""
        await self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                            "e.focus(); e.select(); })()")
        await self.send("Input.dispatchKeyEvent", type="keyDown", key="Delete", code="Delete",
                        windowsVirtualKeyCode=46)
        await self.send("Input.dispatchKeyEvent", type="keyUp", key="Delete", code="Delete", windowsVirtualKeyCode=46)
        if text:
            await self.send("Input.insertText", text=text)

    async def click(self, selector: str) -> None:
        """A mouse click in the middle of the element (scrolled into view first)."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
            "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def html(self) -> str:
        return await self.evaluate("document.documentElement.outerHTML")

    async def screenshot(self, path: Path) -> None:
        """The whole page, top to bottom."""
        height = await self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        await self.evaluate("window.scrollTo(0, 0)")
        await self.send("Emulation.setDeviceMetricsOverride", width=self._size[0], height=int(height),
                        deviceScaleFactor=1, mobile=False)
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
