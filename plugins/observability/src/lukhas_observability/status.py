"""The status page: plugins and their live traffic, as plain HTML for a person.

Request rates and latencies come from the request histogram, compared with a
sample of it taken about `window_s` ago; the page needs no JavaScript, loads
nothing from elsewhere and reloads itself. With several workers the histogram
is the one merged over them all, so the figures are the whole host's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from lukhas_kernel import PluginView, StartupReport

from .request_metrics import BUCKETS, Totals

__all__ = ["Traffic", "TrafficWindow", "bucket_quantile", "render"]


def bucket_quantile(q: float, bounds: tuple[float, ...], cumulative: tuple[float, ...]) -> float | None:
    """The q-quantile estimated from cumulative bucket counts, as Prometheus's
    `histogram_quantile` does: linear within the bucket holding the rank; the
    highest finite bound when the rank falls in +Inf. None without observations.

    `cumulative` has one count per bound, then the +Inf count.
    """
    total = cumulative[-1]
    if total <= 0:
        return None
    rank = q * total
    below, lower = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=False):
        if count >= rank:
            in_bucket = count - below
            return lower + (bound - lower) * ((rank - below) / in_bucket if in_bucket else 1.0)
        below, lower = count, bound
    return bounds[-1]


@dataclass(frozen=True)
class Traffic:
    """One owner's requests over the window."""

    requests_per_s: float
    mean_ms: float | None
    p95_ms: float | None
    error_share: float | None  # of answers that were 5xx


class TrafficWindow:
    """Samples of per-plugin request totals, kept for `window_s` seconds.

    The oldest sample kept is the newest one at least `window_s` old (or the
    first ever), so rates cover the window once the host has run that long.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[str, Totals]]] = deque()

    def sample(self, now: float, totals: dict[str, Totals]) -> None:
        self._samples.append((now, totals))
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    async def run(self, read: Callable[[], Awaitable[dict[str, Totals]]]) -> None:
        """Sample `await read()` now and every sixth of the window, until cancelled."""
        while True:
            totals = await read()
            self.sample(time.monotonic(), totals)
            await asyncio.sleep(self.window_s / 6)

    def traffic(self, now: float, totals: dict[str, Totals]) -> tuple[float, dict[str, Traffic]]:
        """(seconds covered, traffic by owner) from the newest sample at least
        a window before `now` (or the oldest) to `totals`."""
        since, base = self._samples[0] if self._samples else (now, {})
        for taken, sampled in self._samples:
            if taken <= now - self.window_s:
                since, base = taken, sampled
        seconds = now - since
        by_owner = {}
        for owner, current in totals.items():
            before = base.get(owner) or Totals(0.0, 0.0, 0.0, (0.0,) * len(current.buckets))
            count = current.count - before.count
            buckets = tuple(a - b for a, b in zip(current.buckets, before.buckets, strict=True))
            p95 = bucket_quantile(0.95, BUCKETS, buckets)
            by_owner[owner] = Traffic(
                requests_per_s=count / seconds if seconds > 0 else 0.0,
                mean_ms=(current.seconds - before.seconds) / count * 1000 if count else None,
                p95_ms=None if p95 is None else p95 * 1000,
                error_share=(current.errors - before.errors) / count if count else None,
            )
        return seconds, by_owner


#: Served as /status/style.css: the page carries no inline style, so its
#: Content-Security-Policy can allow the host's own files only.
STYLESHEET = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1f24}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem .6rem;
border-bottom:1px solid #d8dee4;vertical-align:top}th{background:#f6f8fa}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.state{font-weight:600;padding:.1rem .45rem;border-radius:.3rem;white-space:nowrap}
.active,.ok{background:#dafbe1;color:#116329}.degraded,.partial{background:#fff8c5;color:#7d4e00}
.disabled{background:#eaeef2;color:#424a53}.failed,.skipped{background:#ffebe9;color:#a40e26}
.muted{color:#57606a}nav a{margin-right:1rem}
"""


def _number(value: float | None, unit: str, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f} {unit}"


def _checks(plugin: PluginView) -> str:
    return ", ".join(f"{escape(name)} {'passed' if result.passed else 'failed'} ({result.ms:.1f} ms)"
                     for name, result in plugin.health_checks.items()) or "–"


def render(report: StartupReport, plugins: list[PluginView], seconds: float,
           traffic: dict[str, Traffic], refresh_s: int, ready: bool) -> str:
    """The whole page; every value from plugins and requests is escaped."""
    rows = []
    for plugin in plugins:
        rows.append(
            f"<tr><td>{escape(plugin.name)}</td>"
            f'<td><span class="state {plugin.state.value}">{plugin.state.value}</span></td>'
            f"<td>{escape(plugin.reason or '')}</td>"
            f"<td>{escape(plugin.version or '–')}</td>"
            f'<td class="n">{_number(plugin.startup_ms, "ms")}</td>'
            f"<td>{_checks(plugin)}</td></tr>")
    # Every plugin and the kernel, idle ones too, then any other owner seen.
    owners = dict.fromkeys(["kernel", *(plugin.name for plugin in plugins), *sorted(traffic)])
    idle = Traffic(0.0, None, None, None)
    requests = []
    for owner in owners:
        figures = traffic.get(owner, idle)
        share = None if figures.error_share is None else figures.error_share * 100
        requests.append(
            f"<tr><td>{escape(owner)}</td>"
            f'<td class="n">{_number(figures.requests_per_s, "/s", 2)}</td>'
            f'<td class="n">{_number(figures.mean_ms, "ms")}</td>'
            f'<td class="n">{_number(figures.p95_ms, "ms")}</td>'
            f'<td class="n">{_number(share, "%")}</td></tr>')
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh_s}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Lukhas status: {report.status}</title><link rel="stylesheet" href="/status/style.css"></head>
<body>
<header><h1>Lukhas status: <span class="state {report.status}">{report.status}</span></h1>
<p class="muted">{"Serving" if ready else "Starting"}; {len(plugins)} plugins.
Shown at {now}; this page reloads every {refresh_s} s.</p>
<nav><a href="/docs">API documentation (/docs)</a><a href="/metrics">Prometheus metrics (/metrics)</a></nav>
</header>
<main>
<h2>Plugins</h2>
<table><thead><tr><th>Plugin</th><th>State</th><th>Reason</th><th>Version</th><th class="n">Start-up</th>
<th>Health checks (last run)</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<h2>Requests over the last {seconds:.0f} s</h2>
<table><thead><tr><th>Answered by</th><th class="n">Rate</th><th class="n">Mean latency</th>
<th class="n">p95 latency</th><th class="n">5xx answers</th></tr></thead>
<tbody>
{chr(10).join(requests)}
</tbody></table>
<p class="muted">p95 is estimated from the latency histogram's buckets, as Prometheus's
<code>histogram_quantile</code> does.</p>
</main></body></html>
"""
