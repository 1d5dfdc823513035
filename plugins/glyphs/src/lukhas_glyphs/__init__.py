"""Lukhas glyphs: GLYPH bindings, signed tokens and a tamper-evident audit trail."""
