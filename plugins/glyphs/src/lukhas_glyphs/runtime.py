"""What the glyphs plugin's setup creates, typed for its hooks and routes."""

from __future__ import annotations

from dataclasses import dataclass

from lukhas_kernel import PluginContext

from .metrics import GlyphMetrics
from .models import GlyphsSettings
from .store import GlyphStore
from .tokens import Signer


@dataclass(frozen=True)
class GlyphsRuntime:
    store: GlyphStore
    metrics: GlyphMetrics
    signer: Signer


GlyphsContext = PluginContext[GlyphsSettings, GlyphsRuntime]
