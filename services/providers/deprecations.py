"""Catalog models whose provider has announced their end of life, found at start.

The anthropic SDK carries the deprecation table it warns from on every call
(`anthropic._data.DEPRECATED_MODELS`: model id -> end-of-life date, as text). The providers
service logs each served catalog model on it once, at start, where an operator reads the logs:
requests to a model past its retirement date fail (Anthropic's model-deprecations page).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def sdk_deprecations() -> Mapping[str, str]:
    """The installed anthropic SDK's table; empty when this SDK version has none."""
    try:
        from anthropic._data import DEPRECATED_MODELS
    except ImportError:
        return {}
    return DEPRECATED_MODELS


def deprecated(model_ids: Iterable[str], table: Mapping[str, str]) -> dict[str, str]:
    """The ids of `model_ids` the table lists, with their end-of-life dates."""
    return {model: table[model] for model in model_ids if model in table}
