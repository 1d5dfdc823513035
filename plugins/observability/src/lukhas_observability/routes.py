"""HTTP routes of the observability plugin: `/metrics` and `/status` (see the plugin's README).

Both lie outside `/api/v1`, so they need no token.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import hdrs, web
from lukhas_kernel import Route
from prometheus_client.exposition import choose_encoder

from .metrics import Scrape
from .runtime import ObservabilityContext, kernel_of
from .status import STYLESHEET, render


def observability_routes(context: ObservabilityContext) -> list[Route]:
    settings, kernel = context.settings, kernel_of(context)

    async def metrics(request: web.Request) -> web.Response:
        # Hooks run here, on the loop; the thread only encodes what they returned
        # (and, with several workers, reads their files).
        plugins = kernel.plugins()
        startup = context.runtime.startup
        if startup is not None:
            startup.record(plugins)
        scrape = Scrape(plugins, kernel.collectors(), first=context.name,
                        multiprocess=context.runtime.multiprocess)
        # Text format 0.0.4 unless the scraper asks for OpenMetrics, as prometheus-client decides.
        encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT, [])))
        body = await asyncio.get_running_loop().run_in_executor(None, encoder, scrape)
        response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
        response.enable_compression()  # only when the scraper accepts it
        return response

    async def status(request: web.Request) -> web.Response:
        http, window = context.runtime.http, context.runtime.window
        totals = await asyncio.to_thread(http.totals)  # several workers: read from their files
        seconds, traffic = window.traffic(time.monotonic(), totals)
        page = render(kernel.report(), kernel.plugins(), seconds, traffic, settings.status_refresh_s,
                      kernel.ready)
        return web.Response(text=page, content_type="text/html")

    async def stylesheet(request: web.Request) -> web.Response:
        return web.Response(text=STYLESHEET, content_type="text/css",
                            headers={hdrs.CACHE_CONTROL: "max-age=3600"})

    return [
        Route("GET", "/metrics", metrics, media_type="text/plain",
              summary="Prometheus metrics: text format, or OpenMetrics when the Accept header asks"),
        Route("GET", "/status", status, media_type="text/html",
              summary="Status page for a person: plugins, their states and live request figures"),
        Route("GET", "/status/style.css", stylesheet, media_type="text/css",
              summary="The status page's stylesheet"),
    ]
