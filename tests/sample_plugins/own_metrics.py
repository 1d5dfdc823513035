"""A third-party plugin with Prometheus collectors of its own (it declares no
dependency on prometheus-client: the kernel brings it): a counter its route
increments, and a custom collector reading state it keeps."""

from __future__ import annotations

from aiohttp import web
from lukhas_kernel import PluginInfo, Route, hookimpl
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel


class Waved(BaseModel):
    hand: str


class QueueDepth(Collector):
    """Reads, at each scrape, a figure the plugin keeps current."""

    def __init__(self) -> None:
        self.depth = 0

    def collect(self):
        yield GaugeMetricFamily("own_metrics_queue_depth", "Items waiting", value=self.depth)


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="1.0")


@hookimpl
async def lukhas_setup(context) -> None:
    context.state["waves"] = Counter("own_metrics_waves", "Waves answered", ["hand"], registry=None)
    context.state["depth"] = QueueDepth()


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def wave(request: web.Request) -> Waved:
        hand = request.match_info["hand"]
        context.state["waves"].labels(hand=hand).inc()
        context.state["depth"].depth += 1
        return Waved(hand=hand)

    return [Route("POST", "/api/v1/own_metrics/wave/{hand:left|right}", wave, response=Waved)]


@hookimpl
def lukhas_metrics(context) -> list[Collector]:
    return [context.state["waves"], context.state["depth"]]
