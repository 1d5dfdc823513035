"""Headless Chromium for tests: load a page on 127.0.0.1 and read what a person sees.

Chromium (Debian's package; `make test` installs it) is driven over the
DevTools protocol with aiohttp's websocket client. It runs with JavaScript
disabled, so a page passes only if it is readable without it; the text is
`document.body.innerText`, which leaves out what CSS hides.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.polling import eventually_async

__all__ = ["Loaded", "load_page", "visible_text"]

_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
]
_NO_SCRIPT = "--blink-settings=scriptEnabled=false"


@dataclass(frozen=True)
class Loaded:
    """What a page showed: the value of the evaluated expression, and every
    message the browser logged while loading it (CSP refusals among them)."""

    value: Any
    log: list[str]


class _DevTools:
    """One page's DevTools session: commands by id, events by method."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json()
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"DevTools {method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def logged(self) -> list[str]:
        """The text of every `Log.entryAdded` event received so far."""
        return [m["params"]["entry"]["text"] for m in self._events if m.get("method") == "Log.entryAdded"]

    async def event(self, method: str) -> dict[str, Any]:
        while True:
            for message in self._events:
                if message.get("method") == method:
                    self._events.remove(message)
                    return message.get("params", {})
            self._events.append(await self._ws.receive_json())


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process, timeout_s: float) -> int:
    """Chromium writes its DevTools port into the profile once it listens."""
    active = profile / "DevToolsActivePort"

    def listening() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"chromium exited with {process.returncode} before listening")
        return active.exists() and bool(active.read_text().strip())

    await eventually_async(listening, timeout_s, what="chromium listening")
    return int(active.read_text().split()[0])


async def visible_text(url: str, workdir: Path, timeout_s: float = 60.0) -> str:
    """Load `url` (on 127.0.0.1) with JavaScript off; return the page's visible text."""
    return (await load_page(url, workdir, timeout_s=timeout_s)).value


async def load_page(url: str, workdir: Path, *, javascript: bool = False,
                    expression: str = "document.body.innerText", settle_s: float = 0.0,
                    timeout_s: float = 60.0) -> Loaded:
    """Load `url` (on 127.0.0.1), wait `settle_s` after its load event (for
    scripts to render), and evaluate `expression` in it."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed (`make test` installs Debian's chromium)")
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True)
    # Its own process group, so its helper processes end with it.
    process = await asyncio.create_subprocess_exec(
        executable, *_FLAGS, *([] if javascript else [_NO_SCRIPT]), f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    try:
        async with asyncio.timeout(timeout_s):
            port = await _devtools_port(profile, process, timeout_s)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
                page = next(t for t in targets if t["type"] == "page")
                async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    devtools = _DevTools(ws)
                    await devtools.call("Page.enable")
                    await devtools.call("Log.enable")
                    await devtools.call("Page.navigate", url=url)
                    await devtools.event("Page.loadEventFired")
                    await asyncio.sleep(settle_s)
                    result = await devtools.call("Runtime.evaluate", expression=expression,
                                                 returnByValue=True)
                    return Loaded(result["result"].get("value"), devtools.logged())
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)  # the group we started, by its leader's pid
            await process.wait()
