"""Default colours (RGBA bytes) by kind, use and network; a viewer restyles from the property table."""

from __future__ import annotations

import numpy as np
import pandas as pd

# CJJ 61 convention: water blue, drainage brown, gas yellow, power red, telecom green, heat orange.
NETWORK_COLOURS = {"water": (0, 112, 255), "drainage": (140, 90, 40), "gas": (240, 200, 0),
                   "power": (220, 30, 30), "telecom": (30, 170, 60), "heat": (255, 140, 0)}
USE_COLOURS = {"residential": (236, 224, 200), "commercial": (150, 180, 230), "office": (170, 200, 235),
               "industrial": (200, 190, 170), "public": (230, 190, 150), "education": (240, 210, 140),
               "museum": (230, 170, 170), "hospital": (245, 200, 200)}
KIND_COLOURS = {
    "building": (225, 220, 210), "building_part": (225, 220, 210), "road": (110, 110, 115),
    "railway": (90, 80, 80), "water": (60, 130, 200), "vegetation": (90, 160, 80), "bridge": (170, 170, 170),
    "terrain": (150, 160, 120),
    "wall": (235, 230, 220), "curtain_wall": (150, 200, 230), "slab": (200, 200, 200), "roof": (180, 80, 60),
    "door": (150, 100, 60), "window": (140, 190, 230), "column": (210, 210, 210), "beam": (190, 190, 190),
    "stair": (190, 180, 170), "railing": (90, 90, 90), "covering": (220, 215, 200),
    "pipe_segment": (0, 112, 255), "pipe_fitting": (0, 90, 200), "flow_terminal": (250, 250, 250),
}
VALVE = (230, 40, 40)
DEFAULT = (200, 200, 200)


def colours(rows: pd.DataFrame) -> np.ndarray:
    """(n, 4) uint8 colour per object row (columns kind, attributes, segment, node)."""
    out = np.empty((len(rows), 4), np.uint8)
    out[:, 3] = 255
    for i, (kind, attrs, node) in enumerate(zip(rows["kind"], rows["attributes"], rows["node"], strict=True)):
        rgb = KIND_COLOURS.get(kind, DEFAULT)
        network = kind.rsplit("_", 1)[0]
        if kind.endswith("_pipe") and network in NETWORK_COLOURS:
            rgb = NETWORK_COLOURS[network]
        elif kind.endswith("_node") and network in NETWORK_COLOURS:
            rgb = VALVE if isinstance(node, dict) and node.get("node_type") == "valve" else tuple(
                int(c * 0.7) for c in NETWORK_COLOURS[network])
        elif isinstance(attrs, dict):
            use = str(attrs.get("use") or attrs.get("function") or "").lower()
            rgb = USE_COLOURS.get(use, rgb)
        out[i, :3] = rgb
    return out
