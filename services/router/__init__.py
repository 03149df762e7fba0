"""Cascade router: cheapest adequate model first, quality gate, upgrade, retry and fallback."""
