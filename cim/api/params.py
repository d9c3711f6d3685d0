"""Query parameters of the features API parsed and checked: a bad value is a 400 naming the parameter."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from cim.api.problems import ApiError
from cim.config import Settings


def numbers(value: str, param: str, counts: tuple[int, ...]) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise ApiError(400, f"{param}: {value!r} is not a comma-separated list of numbers") from None
    if len(out) not in counts:
        raise ApiError(400, f"{param}: expected {' or '.join(map(str, counts))} numbers, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ApiError(400, f"{param}: numbers must be finite")
    return out


def bbox(value: str | None, param: str = "bbox") -> tuple[float, ...] | None:
    """4 numbers (x1, y1, x2, y2) or 6 (x1, y1, z1, x2, y2, z2), lower corner first."""
    if value is None or value == "":
        return None
    box = numbers(value, param, (4, 6))
    half = len(box) // 2
    if any(box[i] > box[i + half] for i in range(half)):
        raise ApiError(400, f"{param}: the lower corner comes first (a box across the antimeridian is not "
                            f"supported)")
    return box


def instant(text: str | None, param: str) -> datetime | None:
    """An RFC 3339 date-time or date (UTC when it has no offset); None for "", ".." or None."""
    if text in ("..", "", None):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{param}: {text!r} is not an RFC 3339 date-time or date") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def interval(value: str | None, param: str = "datetime") -> tuple[datetime | None, datetime | None] | None:
    """An instant (start == end) or an interval `start/end` with `..` for an open end."""
    if value is None or value == "":
        return None
    if "/" in value:
        parts = value.split("/")
        if len(parts) != 2:
            raise ApiError(400, f"{param}: an interval is START/END")
        start, end = (instant(p, param) for p in parts)
        if start is not None and end is not None and start > end:
            raise ApiError(400, f"{param}: the interval ends before it starts")
        return start, end
    at = instant(value, param)
    if at is None:
        raise ApiError(400, f"{param}: an instant cannot be '..'")
    return at, at


def limit(value: int | None, cfg: Settings) -> int:
    if value is None:
        return cfg.api_default_limit
    if value < 1:
        raise ApiError(400, "limit: must be 1 or more")
    return min(value, cfg.api_max_limit)


def names(value: str | None) -> list[str] | None:
    """A comma-separated list; None when the parameter is absent."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def sortby(value: str | None) -> list[tuple[str, bool]]:
    """`+name,-top_z` → [(name, ascending)]."""
    out = []
    for item in names(value) or []:
        ascending = not item.startswith("-")
        name = item.lstrip("+-").strip()
        if not name:
            raise ApiError(400, f"sortby: {item!r} names no property")
        out.append((name, ascending))
    return out
