"""EPANET .inp → a water network in the model: junctions, reservoirs (sources), tanks, pipes, pumps and
valves, placed by [COORDINATES] and [VERTICES] in the CRS the user names.

Node elevation is taken as the ground; pipes lie the default cover below it (docs/pipes.md). A junction
tagged in [TAGS] with a node type word (valve, hydrant, meter, connection:BUILDING, …) becomes that type.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from cim.importers.common import check_source, parse_crs, progress_bar, transform_xy
from cim.importers.errors import InputError
from cim.importers.pipes.assemble import assemble
from cim.importers.pipes.fields import node_type_of
from cim.importers.pipes.gis import PipeImport
from cim.importers.pipes.inp import InpNetwork, read_inp
from cim.importers.pipes.topology import build_topology
from cim.importers.pipes.write import write_network
from cim.model.store import Batch, Model
from cim.model.terrain import Ground

NODE_TYPE = {"junction": "junction", "reservoir": "source", "tank": "tank"}


def _node_types(inp: InpNetwork) -> tuple[pd.Series, pd.Series]:
    """Model node types, with [TAGS] refining junctions, and the building a connection tag names."""
    nodes = inp.nodes
    types = nodes["node_type"].map(NODE_TYPE)
    tag = nodes["tag"].astype("string")
    word = tag.str.split(":", n=1).str[0]
    from_tag = node_type_of(word.fillna(""))
    junction = nodes["node_type"] == "junction"
    types = types.where(~(junction & from_tag.notna()), from_tag)
    building = tag.str.split(":", n=1).str[1].where(types == "connection")
    return types, building.astype(object).where(building.notna(), None)


def _lines(inp: InpNetwork, xy: pd.DataFrame) -> np.ndarray:
    """Each link from its start node through its vertices to its end node."""
    links = inp.links
    start = xy.loc[links["from_node"]].to_numpy()
    end = xy.loc[links["to_node"]].to_numpy()
    counts = links["vertices"].map(len).to_numpy()
    inner = np.array([v for vs in links["vertices"] for v in vs], dtype=float).reshape(-1, 2)
    parts = np.repeat(np.arange(len(links)), counts + 2)
    coords = np.empty((len(parts), 2))
    first = np.cumsum(counts + 2) - (counts + 2)
    last = first + counts + 1
    coords[first], coords[last] = start, end
    middle = np.ones(len(parts), bool)
    middle[first] = middle[last] = False
    coords[middle] = inner
    return shapely.linestrings(coords, indices=parts)


def import_epanet(model: Model, path: Path, crs: str, layer: str = "water") -> PipeImport:
    """Import an EPANET network into `layer`, replacing what this file brought before."""
    check_source(path)
    src_crs = parse_crs(path, crs)
    inp = read_inp(path)
    nodes, links = inp.nodes, inp.links
    no_xy = nodes["x"].isna() | nodes["y"].isna()
    if no_xy.any():
        raise InputError(path, "has no [COORDINATES]; a network needs them to be placed on the map",
                         f"line {inp.line_of.get('NODE ' + str(nodes.index[no_xy][0]), '?')}")
    xy = nodes[["x", "y"]].astype(float)
    lines = _lines(inp, xy)
    try:
        lines = transform_xy(lines, src_crs, model.crs)
        node_xy = shapely.get_coordinates(transform_xy(shapely.points(xy.to_numpy()), src_crs, model.crs))
    except ValueError as exc:
        raise InputError(path, f"cannot transform from {src_crs.to_string()}: {exc}") from None
    types, building = _node_types(inp)
    is_pipe = (links["link_type"] == "pipe").to_numpy()
    ids = nodes.index.astype(str).to_numpy(dtype=object)
    topo = build_topology(lines[is_pipe], links.index[is_pipe].astype(str).to_numpy(dtype=object), node_xy, ids,
                          types.to_numpy(dtype=object), 1e-6, links["from_node"][is_pipe].astype(str).to_numpy(),
                          links["to_node"][is_pipe].astype(str).to_numpy())
    order = pd.Series(np.arange(len(topo.node_key)), index=topo.node_key)
    pos = pd.Series(topo.node_point, index=topo.node_key)  # every node is a point here
    row = nodes.iloc[pos.to_numpy()]
    with model.transaction() as conn:
        ground_model = Ground.load(conn)
        ground = np.where(row["node_type"] == "reservoir", np.nan, row["elevation_m"].to_numpy(float))
        if ground_model:
            dem = ground_model.sample(topo.node_xy[:, 0], topo.node_xy[:, 1])
            ground = np.where(np.isnan(ground), dem, ground)
        ground = np.where(np.isnan(ground), row["elevation_m"].to_numpy(float), ground)  # reservoir head, last
        node_table = pd.DataFrame({
            "key": topo.node_key, "type": topo.node_type, "ground": ground, "well_depth": np.nan,
            "normal_state": None, "operable": None, "building_ref": building.iloc[pos.to_numpy()].to_numpy(),
            "source_id": topo.node_key,
        })
        node_attrs = row.drop(columns=["x", "y"]).rename(columns={"node_type": "epanet_type"}).reset_index(drop=True)
        pipes = links[is_pipe].iloc[topo.line_source]
        seg = pd.DataFrame({
            "key": pipes.index.astype(str), "source_id": pipes.index.astype(str), "link_type": "pipe",
            "from": topo.seg_from, "to": topo.seg_to, "shape": "circular",
            "diameter_mm": pipes["diameter_mm"].to_numpy(float), "width_mm": pipes["diameter_mm"].to_numpy(float),
            "height_mm": pipes["diameter_mm"].to_numpy(float), "material": None, "pressure_class": None,
            "subtype": None, "year": np.nan, "owner": None, "name": None, "status": "existing",
            "depth_start": np.nan, "depth_end": np.nan, "elevation_start": np.nan, "elevation_end": np.nan,
        })
        keep = ["length_m", "roughness", "minor_loss", "status", "tag"]
        seg_attrs = pipes[keep].rename(columns={"length_m": "epanet_length_m", "status": "initial_status"})
        other = links[~is_pipe]
        extra = pd.DataFrame({"key": other.index.astype(str), "from": other["from_node"].map(order).to_numpy(),
                              "to": other["to_node"].map(order).to_numpy(), "link_type": other["link_type"]})
        nodes_out, segs_out, summary = assemble(
            model, "water", node_table, node_attrs, topo.node_xy, seg.reset_index(drop=True),
            seg_attrs.reset_index(drop=True), topo.lines, extra.reset_index(drop=True), "crown", ground_model,
            topo.report, where=lambda i: (path, f"line {inp.line_of.get('LINK ' + seg['key'].iloc[i], '?')}"),
            link_attrs=other[["diameter_mm", "status", "valve_type", "setting", "pump_parameters", "tag"]])
        summary.update(network="water", flow_units=inp.flow_units, title=inp.title, source_crs=src_crs.to_string())
        batch = Batch("epanet", layer, path, src_crs.to_string(), summary)
        with progress_bar(f"{path.name} → {layer}", len(nodes_out) + len(segs_out)) as advance:
            result = write_network(conn, model.info, batch, "water", nodes_out, segs_out, advance)
    with model.connect(autocommit=True) as conn:
        conn.execute("ANALYZE city_object")
    return PipeImport(result, summary)
