"""Analysis results as JSON: what the command line's --json and the API answer."""

from __future__ import annotations

import math


def json_safe(value: object) -> object:
    """NaN and infinities (no ground, no height) become null; containers are walked."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
