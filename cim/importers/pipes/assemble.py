"""From topology and attributes to the node and segment rows of a network: heights, gravity flow direction,
3D geometry, the import report. Shared by the GIS and EPANET importers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import shapely

from cim.config import settings
from cim.importers.common import ewkb_hex, json_lines
from cim.importers.errors import InputError
from cim.importers.pipes.elevation import centreline_heights
from cim.importers.pipes.topology import listed
from cim.model.kinds import TERMINAL_NODE_TYPES
from cim.model.store import Model
from cim.model.terrain import Ground

GRAVITY = ("drainage",)  # networks whose pipes run downhill from their start to their end


def _reverse(coords: np.ndarray, owner: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Vertex order reversed within the flipped lines."""
    counts = np.bincount(owner, minlength=len(flip))
    first = np.cumsum(counts) - counts
    local = np.arange(len(owner)) - first[owner]
    pos = np.where(flip[owner], first[owner] + counts[owner] - 1 - local, np.arange(len(owner)))
    out = np.empty_like(coords)
    out[pos] = coords
    return out


def _count(values: np.ndarray) -> dict:
    keys, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}


def assemble(model: Model, network: str, nodes: pd.DataFrame, node_attrs: pd.DataFrame, node_xy: np.ndarray,
             seg: pd.DataFrame, seg_attrs: pd.DataFrame, lines: np.ndarray, links: pd.DataFrame,
             depth_ref: str | None, ground: Ground, report: dict,
             where: Callable[[int], tuple[str, str]], link_attrs: pd.DataFrame | None = None,
             ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """nodes: key, type, ground, well_depth, normal_state, operable, building_ref, source_id.
    seg: key, source_id, link_type, from, to, shape, diameter_mm, width_mm, height_mm, material,
    pressure_class, subtype, year, owner, name, status, depth_start/end, elevation_start/end (given values).
    links: extra key, from, to, link_type drawn straight between their nodes (pumps and valves)."""
    n_pipes = len(seg)
    if len(links):
        straight = shapely.linestrings(np.stack([node_xy[links["from"].to_numpy(int)],
                                                 node_xy[links["to"].to_numpy(int)]], axis=1))
        lines = np.concatenate([lines, straight])
        seg = pd.concat([seg, links.assign(source_id=links["key"], shape="circular", status="existing")],
                        ignore_index=True)
        extra = pd.DataFrame(index=range(len(links))) if link_attrs is None else link_attrs.reset_index(drop=True)
        seg_attrs = pd.concat([seg_attrs, extra], ignore_index=True)
    gravity = network in GRAVITY
    ref = depth_ref or ("invert" if gravity else "crown")
    frm, to = seg["from"].to_numpy(int), seg["to"].to_numpy(int)
    height_m = seg["height_mm"].to_numpy(float) / 1000.0
    terrain = ground.sample if ground else None
    h = centreline_heights(lines, height_m, nodes["ground"].to_numpy(float), frm, to,
                           (seg["elevation_start"].to_numpy(float), seg["elevation_end"].to_numpy(float)),
                           (seg["depth_start"].to_numpy(float), seg["depth_end"].to_numpy(float)),
                           terrain, ref, settings().pipe_cover.get(network, 1.0), gravity)
    if h.missing.any():
        i = int(np.flatnonzero(h.missing)[0])
        file, record = where(i) if i < n_pipes else ("links", seg["key"].iloc[i])
        raise InputError(file, "no height for this pipe: it has no elevations and no ground (import a DEM first "
                               "with `cim import dem`, or give ground elevations on its points)", record)
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    xyz = np.column_stack([coords, h.z])
    inv_s, inv_e = h.invert_start, h.invert_end
    start_cols = [h.ground_start, h.depth_start, inv_s]
    end_cols = [h.ground_end, h.depth_end, inv_e]
    flip = np.zeros(len(seg), bool)
    if gravity:
        flip = inv_s < inv_e - 1e-9  # drainage runs from the higher invert to the lower
        xyz = _reverse(xyz, owner, flip)
        frm, to = np.where(flip, to, frm), np.where(flip, frm, to)
        start_cols, end_cols = ([np.where(flip, e, s) for s, e in zip(start_cols, end_cols, strict=True)],
                                [np.where(flip, s, e) for s, e in zip(start_cols, end_cols, strict=True)])
    geoms = shapely.linestrings(xyz, indices=owner)
    step = np.zeros(len(xyz))
    step[1:] = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
    counts = np.bincount(owner, minlength=len(seg))
    first = np.cumsum(counts) - counts
    step[first] = 0.0
    length3d = np.bincount(owner, weights=step, minlength=len(seg))
    length2d = shapely.length(shapely.force_2d(geoms))
    slope = np.divide(start_cols[2] - end_cols[2], length2d, out=np.full(len(seg), np.nan), where=length2d > 0)
    half = np.nan_to_num(height_m, nan=0.0) / 2
    zmin = pd.Series(xyz[:, 2]).groupby(owner).min().to_numpy()
    zmax = pd.Series(xyz[:, 2]).groupby(owner).max().to_numpy()
    node_keys = ("N:" + nodes["key"].astype(str)).to_numpy()
    segments = pd.DataFrame({
        "source_key": "P:" + seg["key"].astype(str), "source_id": seg["source_id"], "name": seg.get("name"),
        "attributes": json_lines(seg_attrs), "geom": ewkb_hex(geoms, model.info.srid),
        "base_z": zmin - half, "top_z": zmax + half, "status": seg["status"].fillna("existing"),
        "valid_from": pd.Series(seg["year"].to_numpy(float)).map(
            lambda y: f"{int(y):04d}-01-01" if np.isfinite(y) and 1000 <= y <= 2200 else None),
        "network": network, "link_type": seg["link_type"], "shape": seg["shape"],
        "diameter_mm": seg["diameter_mm"], "width_mm": seg["width_mm"], "height_mm": seg["height_mm"],
        "material": seg["material"], "pressure_class": seg["pressure_class"], "subtype": seg["subtype"],
        "year": pd.array(np.where(np.isfinite(seg["year"].to_numpy(float)), seg["year"], np.nan), dtype="Int64"),
        "owner": seg["owner"],
        "ground_start": start_cols[0], "ground_end": end_cols[0], "depth_start": start_cols[1],
        "depth_end": end_cols[1], "invert_start": start_cols[2], "invert_end": end_cols[2],
        "length_m": length3d, "slope": slope,
        "from_key": node_keys[frm], "to_key": node_keys[to],
    })
    node_rows = _nodes(model, network, nodes, node_attrs, node_xy, frm, to, xyz, first, counts, height_m, ground)
    report = dict(report)
    degree = np.bincount(np.concatenate([frm, to]), minlength=len(nodes))
    terminal = node_rows["node_type"].isin(list(TERMINAL_NODE_TYPES)).to_numpy()
    keys = nodes["key"].astype(str).to_numpy()
    report["dangling_ends"] = listed(keys[(degree == 1) & ~terminal])
    report["unconnected_points"] = listed(keys[(degree == 0) & nodes["source_id"].notna().to_numpy()])
    report.update(
        pipes=int(n_pipes), links=_count(seg["link_type"].iloc[n_pipes:]) if len(seg) > n_pipes else {},
        nodes=_count(node_rows["node_type"]), length_km=round(float(length2d[:n_pipes].sum()) / 1000, 3),
        depth_reference=ref, height_rules=_count(h.rule), reversed_to_flow=int(flip.sum()),
        no_size=int(np.isnan(height_m[:n_pipes]).sum()),
    )
    if gravity:
        report["flat_or_rising"] = int((slope[:n_pipes] <= 0).sum())
    return node_rows, segments, report


def _nodes(model: Model, network: str, nodes: pd.DataFrame, attrs: pd.DataFrame, node_xy: np.ndarray,
           frm: np.ndarray, to: np.ndarray, xyz: np.ndarray, first: np.ndarray, counts: np.ndarray,
           height_m: np.ndarray, ground: Ground) -> pd.DataFrame:
    """Nodes sit at the mean height of the pipe ends they join; manholes span bottom to cover."""
    k = len(nodes)
    last = first + counts - 1
    end_node = np.concatenate([frm, to])
    end_z = np.concatenate([xyz[first, 2], xyz[last, 2]])
    end_h = np.concatenate([np.nan_to_num(height_m), np.nan_to_num(height_m)])
    n_ends = np.bincount(end_node, minlength=k)
    mean_z = np.bincount(end_node, weights=end_z, minlength=k) / np.maximum(n_ends, 1)
    low = pd.Series(end_z - end_h / 2).groupby(end_node).min().reindex(range(k)).to_numpy()
    high = pd.Series(end_z + end_h / 2).groupby(end_node).max().reindex(range(k)).to_numpy()
    g = nodes["ground"].to_numpy(float)
    if ground:
        g = np.where(np.isfinite(g), g, ground.sample(node_xy[:, 0], node_xy[:, 1]))
    cover = settings().pipe_cover.get(network, 1.0)
    z = np.where(n_ends > 0, mean_z, np.where(np.isfinite(g), g - cover, 0.0))
    types = nodes["type"].to_numpy(dtype=object)
    manhole = np.isin(types, ["manhole", "inlet"])
    well = nodes["well_depth"].to_numpy(float)
    bottom = np.where(manhole & np.isfinite(well) & np.isfinite(g), g - well, low)
    depth = np.where(manhole, g - bottom, g - high)
    valve = types == "valve"
    geoms = shapely.points(np.column_stack([node_xy, z]))
    return pd.DataFrame({
        "source_key": "N:" + nodes["key"].astype(str), "source_id": nodes["source_id"], "name": None,
        "attributes": json_lines(attrs), "geom": ewkb_hex(geoms, model.info.srid),
        "base_z": np.where(manhole, bottom, z), "top_z": np.where(manhole & np.isfinite(g), g, z),
        "status": "existing", "valid_from": None,
        "network": network, "node_type": types, "ground_z": g, "depth": depth,
        "bottom_z": np.where(manhole, bottom, np.nan),
        "operable": np.where(valve, nodes["operable"].map(lambda v: True if v is None else bool(v)), None),
        "normal_state": np.where(valve, nodes["normal_state"].fillna("open"), None),
        "building_ref": nodes["building_ref"],
    })
