"""A paced, bounded HTTP load on 127.0.0.1 that counts every request's outcome.

Half the requests go over a few keep-alive connections, half each on a new
connection. The client is a plain HTTP/1.1 one on asyncio streams: unlike
aiohttp's or urllib's, it never retries, so a keep-alive connection the
server drops under a request, or a connection it refuses, is counted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

#: Connections of each kind; enough for a few hundred requests/s on loopback.
_KEEP_ALIVE = 6
_FRESH = 6


@dataclass
class LoadReport:
    sent: int = 0
    answered: Counter[int] = field(default_factory=Counter)  # by status
    failures: list[str] = field(default_factory=list)  # one line each: what happened
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return sum(self.answered.values()) / self.seconds if self.seconds else 0.0


class Load:
    """`with Load(port, paths, headers) as load:` … `load.report` after the block.

    Sends `rate` requests/s, round robin over `paths`, until the block ends
    or `max_s` passes; a request not answered within 10 s is a failure.
    """

    def __init__(self, port: int, paths: list[str], headers: dict[str, str] | None = None,
                 rate: float = 250.0, max_s: float = 180.0) -> None:
        self.port, self.paths, self.rate, self.max_s = port, paths, rate, max_s
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.report = LoadReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the load did not stop"

    async def _run(self) -> None:
        keep_alive: asyncio.Queue[str | None] = asyncio.Queue()
        fresh: asyncio.Queue[str | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._keep_alive(keep_alive)) for _ in range(_KEEP_ALIVE)]
        workers += [asyncio.create_task(self._fresh(fresh)) for _ in range(_FRESH)]
        started = time.monotonic()
        for n in range(int(self.rate * self.max_s)):
            if self._stop.is_set():
                break
            (keep_alive if n % 2 else fresh).put_nowait(self.paths[n // 2 % len(self.paths)])
            self.report.sent += 1
            await asyncio.sleep(max(0.0, started + (n + 1) / self.rate - time.monotonic()))
        for queue, count in ((keep_alive, _KEEP_ALIVE), (fresh, _FRESH)):
            for _ in range(count):
                queue.put_nowait(None)
        await asyncio.gather(*workers)
        self.report.seconds = time.monotonic() - started

    def _request(self, path: str, close: bool) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{self.headers}"
                + ("Connection: close\r\n" if close else "") + "\r\n").encode()

    async def _keep_alive(self, queue: asyncio.Queue[str | None]) -> None:
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (path := await queue.get()) is not None:
            try:
                if streams is None:
                    streams = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 10)
                reader, writer = streams
                writer.write(self._request(path, close=False))
                status, closing = await asyncio.wait_for(_response(reader), 10)
                self.report.answered[status] += 1
                if closing:
                    writer.close()
                    streams = None
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.report.failures.append(f"keep-alive GET {path}: {type(exc).__name__}: {exc}")
                if streams is not None:
                    streams[1].close()
                streams = None
        if streams is not None:
            streams[1].close()

    async def _fresh(self, queue: asyncio.Queue[str | None]) -> None:
        while (path := await queue.get()) is not None:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 10)
                try:
                    writer.write(self._request(path, close=True))
                    status, _ = await asyncio.wait_for(_response(reader), 10)
                    self.report.answered[status] += 1
                finally:
                    writer.close()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.report.failures.append(f"new connection GET {path}: {type(exc).__name__}: {exc}")


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response with a Content-Length body: (status, server closes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = (line.partition(":") for line in lines[1:] if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() == "close"
