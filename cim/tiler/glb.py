"""One tile's content as binary glTF 2.0: a single primitive with normals, vertex colours and feature ids
(EXT_mesh_features) pointing at one property table (EXT_structural_metadata)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pygltflib as gl

FEATURE_ID = "_FEATURE_ID_0"
NO_DATA_NUMBER = -9999.0


@dataclass
class Column:
    """One property of the table: 'STRING' (list of str|None) or 'FLOAT64' (array, NaN = no data)."""

    name: str
    type: str
    values: list | np.ndarray
    description: str | None = None


class _Blob:
    """The binary chunk: 8-byte-aligned buffer views (metadata requires 8)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.views: list[gl.BufferView] = []

    def add(self, data: bytes, target: int | None = None, stride: int | None = None) -> int:
        pad = (-self.size) % 8
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        self.views.append(gl.BufferView(buffer=0, byteOffset=self.size, byteLength=len(data), target=target,
                                        byteStride=stride))
        self.parts.append(data)
        self.size += len(data)
        return len(self.views) - 1

    def bytes(self) -> bytes:
        pad = (-self.size) % 8
        return b"".join(self.parts) + b"\0" * pad


def _accessor(blob: _Blob, accessors: list, array: np.ndarray, kind: str, component: int,
              target: int | None, normalized: bool = False, bounds: bool = False) -> int:
    view = blob.add(np.ascontiguousarray(array).tobytes(), target)
    acc = gl.Accessor(bufferView=view, componentType=component, count=len(array), type=kind,
                      normalized=normalized or None)
    if bounds:
        acc.min = [float(v) for v in array.min(axis=0)]
        acc.max = [float(v) for v in array.max(axis=0)]
    accessors.append(acc)
    return len(accessors) - 1


def _table(blob: _Blob, count: int, class_name: str, columns: list[Column]) -> tuple[dict, dict]:
    """(schema class, property table) for EXT_structural_metadata."""
    props, table = {}, {}
    for col in columns:
        if col.type == "STRING":
            encoded = [(v or "").encode() for v in col.values]
            offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded])]).astype(np.uint32)
            table[col.name] = {"values": blob.add(b"".join(encoded)), "stringOffsets": blob.add(offsets.tobytes()),
                               "stringOffsetType": "UINT32"}
            prop = {"type": "STRING"}
            if any(v is None or v == "" for v in col.values):
                prop["noData"] = ""
        else:
            values = np.asarray(col.values, np.float64)
            missing = ~np.isfinite(values)
            table[col.name] = {"values": blob.add(np.where(missing, NO_DATA_NUMBER, values).tobytes())}
            prop = {"type": "SCALAR", "componentType": "FLOAT64"}
            if missing.any():
                prop["noData"] = NO_DATA_NUMBER
        if col.description:
            prop["description"] = col.description
        props[col.name] = prop
    return {"properties": props}, {"class": class_name, "count": count, "properties": table}


def write_glb(positions: np.ndarray, normals: np.ndarray, colors: np.ndarray, feature: np.ndarray,
              indices: np.ndarray, translation: np.ndarray, class_name: str, columns: list[Column],
              double_sided: bool) -> bytes:
    """A glb: positions/normals in glTF's y-up axes relative to `translation` (the node's offset), colours
    (n, 4) uint8, feature (n,) row of `columns` for each vertex."""
    blob = _Blob()
    accessors: list[gl.Accessor] = []
    attrs = gl.Attributes(
        POSITION=_accessor(blob, accessors, positions.astype(np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER,
                           bounds=True),
        NORMAL=_accessor(blob, accessors, normals.astype(np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER),
        COLOR_0=_accessor(blob, accessors, colors.astype(np.uint8), gl.VEC4, gl.UNSIGNED_BYTE, gl.ARRAY_BUFFER,
                          normalized=True),
    )
    setattr(attrs, FEATURE_ID, _accessor(blob, accessors, feature.astype(np.float32), gl.SCALAR, gl.FLOAT,
                                         gl.ARRAY_BUFFER))
    small = len(positions) < 65536
    index_acc = _accessor(blob, accessors, indices.reshape(-1).astype(np.uint16 if small else np.uint32),
                          gl.SCALAR, gl.UNSIGNED_SHORT if small else gl.UNSIGNED_INT, gl.ELEMENT_ARRAY_BUFFER)
    count = len(columns[0].values)
    schema_class, table = _table(blob, count, class_name, columns)
    primitive = gl.Primitive(attributes=attrs, indices=index_acc, material=0, mode=gl.TRIANGLES, extensions={
        "EXT_mesh_features": {"featureIds": [{"featureCount": count, "attribute": 0, "propertyTable": 0}]}})
    data = blob.bytes()
    gltf = gl.GLTF2(
        asset=gl.Asset(version="2.0", generator="cim tiler"),
        scene=0, scenes=[gl.Scene(nodes=[0])],
        nodes=[gl.Node(mesh=0, translation=[float(v) for v in translation])],
        meshes=[gl.Mesh(primitives=[primitive])],
        materials=[gl.Material(
            pbrMetallicRoughness=gl.PbrMetallicRoughness(baseColorFactor=[1, 1, 1, 1], metallicFactor=0.0,
                                                         roughnessFactor=0.9),
            doubleSided=double_sided)],
        accessors=accessors, bufferViews=blob.views, buffers=[gl.Buffer(byteLength=len(data))],
        extensionsUsed=["EXT_mesh_features", "EXT_structural_metadata"],
        extensions={"EXT_structural_metadata": {
            "schema": {"id": "cim", "classes": {class_name: schema_class}},
            "propertyTables": [table]}},
    )
    gltf.set_binary_blob(data)
    return b"".join(gltf.save_to_bytes())
