"""Write one pipe network batch: city objects (geometry, codes) plus the typed node and segment rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import psycopg

from cim.model.kinds import node_kind, pipe_kind
from cim.model.store import Batch, ModelInfo, WriteResult, write_objects

NODE_COLUMNS = ("network", "node_type", "ground_z", "depth", "bottom_z", "operable", "normal_state",
                "building_ref")
SEGMENT_COLUMNS = ("network", "link_type", "shape", "diameter_mm", "width_mm", "height_mm", "material",
                   "pressure_class", "subtype", "year", "owner", "ground_start", "ground_end", "depth_start",
                   "depth_end", "invert_start", "invert_end", "length_m", "slope")
OBJECT_COLUMNS = ("source_key", "source_id", "name", "attributes", "geom", "base_z", "top_z", "status", "valid_from")


def _rows(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[list]:
    cols = []
    for c in columns:
        values = frame[c].astype(object)
        cols.append(values.where(values.notna(), None).tolist())
    return cols


def write_network(conn: psycopg.Connection, info: ModelInfo, batch: Batch, network: str, nodes: pd.DataFrame,
                  segments: pd.DataFrame, progress: Callable[[int], None] | None = None) -> WriteResult:
    """Replace what this source brought to the layer with these nodes and segments (segments name their
    end nodes by source key in from_key / to_key)."""
    records = pd.concat([
        nodes[list(OBJECT_COLUMNS)].assign(kind=node_kind(network)),
        segments[list(OBJECT_COLUMNS)].assign(kind=pipe_kind(network)),
    ], ignore_index=True)
    records["lod"] = 1
    records["valid_to"] = pd.NaT
    result = write_objects(conn, info, batch, records, progress)
    code_of = dict(zip(records["source_key"], result.codes, strict=True))
    node_codes = result.codes.iloc[:len(nodes)].tolist()
    seg_codes = result.codes.iloc[len(nodes):].tolist()
    with conn.cursor().copy(f"COPY pipe_node (code, {', '.join(NODE_COLUMNS)}) FROM STDIN") as cp:
        for row in zip(node_codes, *_rows(nodes, NODE_COLUMNS), strict=True):
            cp.write_row(row)
    ends = [segments["from_key"].map(code_of).tolist(), segments["to_key"].map(code_of).tolist()]
    if any(c is None or (isinstance(c, float) and np.isnan(c)) for c in ends[0] + ends[1]):
        raise ValueError("a segment names an end node that is not in the batch")
    sql = f"COPY pipe_segment (code, from_node, to_node, {', '.join(SEGMENT_COLUMNS)}) FROM STDIN"
    with conn.cursor().copy(sql) as cp:
        for row in zip(seg_codes, *ends, *_rows(segments, SEGMENT_COLUMNS), strict=True):
            cp.write_row(row)
    # service connections name a building by its source id or code; keep the building's unified code
    conn.execute(
        "UPDATE pipe_node n SET building_code = b.code FROM city_object o, city_object b "
        "WHERE o.code = n.code AND o.batch_id = %s AND n.building_ref IS NOT NULL "
        "AND b.kind IN ('building', 'building_part') AND (b.source_id = n.building_ref OR b.code = n.building_ref)",
        (result.batch_id,),
    )
    return result
