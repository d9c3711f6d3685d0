"""The property table of a tile: the unified code first, then the key attributes of its objects."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from cim.tiler.glb import Column

MAX_ATTRIBUTE_COLUMNS = 48
# Columns of pipe_segment / pipe_node left out of the table (the kind already says the network).
SKIP_TYPED = {"network"}


def ident(name: str, taken: set[str]) -> str:
    """A metadata property identifier (^[a-zA-Z_][a-zA-Z0-9_]*$) for any attribute key, unique in `taken`."""
    base = re.sub(r"\W", "_", name, flags=re.ASCII).strip("_") or "attr"
    if base[0].isdigit():
        base = "a_" + base
    out, n = base, 2
    while out in taken:
        out, n = f"{base}_{n}", n + 1
    taken.add(out)
    return out


def _scalar(value):
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        return None  # nested property sets stay in the API
    return value


def _flat(attrs, *typed) -> dict:
    attrs = attrs if isinstance(attrs, dict) else json.loads(attrs or "{}")
    out = {k: _scalar(v) for k, v in attrs.items()}
    for extra in typed:
        if isinstance(extra, dict):
            out.update({k: v for k, v in extra.items() if k not in SKIP_TYPED})
    return out


def columns(rows: pd.DataFrame) -> list[Column]:
    """code, kind, name, base_z, top_z, then attributes present in these rows (numbers as FLOAT64)."""
    cols = [
        Column("code", "STRING", rows["code"].tolist(), "unified object code (统一编码)"),
        Column("kind", "STRING", rows["kind"].tolist()),
        Column("name", "STRING", [None if pd.isna(v) else str(v) for v in rows["name"]]),
        Column("base_z", "FLOAT64", rows["base_z"].astype(float).to_numpy(), "bottom, orthometric height (m)"),
        Column("top_z", "FLOAT64", rows["top_z"].astype(float).to_numpy(), "top, orthometric height (m)"),
    ]
    taken = {c.name for c in cols}
    flat = [_flat(*r) for r in zip(rows["attributes"], rows["segment"], rows["node"], strict=True)]
    keys: list[str] = []
    for d in flat:
        keys.extend(k for k in d if k not in keys and d[k] is not None)
    for key in keys[:MAX_ATTRIBUTE_COLUMNS]:
        values = [d.get(key) for d in flat]
        present = [v for v in values if v is not None]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            cols.append(Column(ident(key, taken), "FLOAT64",
                               np.array([np.nan if v is None else v for v in values], float), key))
        else:
            cols.append(Column(ident(key, taken), "STRING",
                               [None if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                                for v in values], key))
    return [c for c in cols if c.name == "code" or not _empty(c)]


def _empty(col: Column) -> bool:
    """No value in any row (glTF forbids the empty buffer view it would need)."""
    if col.type == "STRING":
        return not any(col.values)
    return not np.isfinite(col.values).any()
