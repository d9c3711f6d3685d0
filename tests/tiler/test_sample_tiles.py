"""The sample district as 3D Tiles: every layer, every object once, valid glTF, sound tilesets, placed to
the millimetre, streamed by CesiumJS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pygltflib as gl

from cim.config import settings
from cim.tiler.check import check_tileset, read_content
from cim.tiler.georef import ecef, find_geoid
from tests.tiler.conftest import ARTIFACTS
from tests.tiler.js_tools import cesium_load, validate_glbs

EXPECTED = {"terrain", "buildings", "landmarks", "roads", "river", "bim", "water", "water-nodes", "drainage",
            "drainage-nodes", "gas", "gas-nodes", "tunnels"}


def _contents(out: Path, name: str) -> dict[Path, object]:
    return {p: read_content(p) for p in sorted((out / name / "t").glob("*.glb"))}


def test_one_tileset_per_layer_under_a_root(sample_tiles):
    out, report = sample_tiles
    assert {r.name for r in report.layers} == EXPECTED
    root = json.loads((out / "tileset.json").read_text())
    assert root["asset"]["version"] == "1.1"
    uris = {c["content"]["uri"] for c in root["root"]["children"]}
    assert uris == {f"{n}/tileset.json" for n in EXPECTED}
    assert "egm96" in root["asset"]["extras"]["heights"].lower()


def test_every_drawn_object_once_with_its_code(sample_tiles, full_model):
    out, _ = sample_tiles
    with full_model.connect() as conn:
        expected = dict(conn.execute(
            "SELECT layer, array_agg(code) FROM city_object WHERE kind NOT IN ('bim_project', 'bim_site', "
            "'bim_building', 'bim_storey', 'space', 'terrain', 'sensor') AND kind NOT LIKE '%%_node' "
            "GROUP BY layer").fetchall())
        hidden = {c for (c,) in conn.execute(
            "SELECT attributes->>'building_code' FROM city_object WHERE kind = 'bim_building'").fetchall()}
        nodes = dict(conn.execute("SELECT layer || '-nodes', array_agg(code) FROM city_object "
                                  "WHERE kind LIKE '%%_node' GROUP BY layer").fetchall())
    expected = {k: set(v) - hidden for k, v in {**expected, **nodes}.items()}
    assert hidden and hidden <= set(expected["buildings"]) | hidden  # the BIM building's LOD1 block stands down
    for name, codes in expected.items():
        seen: list[str] = []
        for content in _contents(out, name).values():
            seen.extend(content.table["code"])
        assert len(seen) == len(set(seen)), f"{name}: an object in two tiles"
        assert set(seen) == codes, name


def test_tilesets_are_structurally_sound(sample_tiles):
    out, _ = sample_tiles
    assert check_tileset(out / "tileset.json") == []


def test_check_catches_broken_tilesets(sample_tiles, tmp_path):
    import shutil

    out, _ = sample_tiles
    bad = tmp_path / "bad"
    shutil.copytree(out / "buildings", bad)
    data = json.loads((bad / "tileset.json").read_text())
    child = data["root"]["children"][0]
    child["geometricError"] = data["root"]["geometricError"] + 10
    child["boundingVolume"]["box"][0] += 5000
    (bad / "tileset.json").write_text(json.dumps(data))
    (bad / data["root"]["content"]["uri"]).unlink()
    problems = "\n".join(check_tileset(bad / "tileset.json"))
    assert "above its parent's" in problems
    assert "not inside its parent's" in problems
    assert "does not exist" in problems


def test_every_glb_passes_gltf_validator(sample_tiles):
    out, report = sample_tiles
    result = validate_glbs([out])
    assert result["files"] == report.tiles == len(list(out.rglob("*.glb")))
    assert result["errors"] == 0, [r["messages"] for r in result["results"] if r["numErrors"]][:3]
    assert result["warnings"] == 0


def test_glb_content_layout(sample_tiles):
    out, _ = sample_tiles
    path = next((out / "buildings" / "t").glob("*.glb"))
    g = gl.GLTF2.load_binary(str(path))
    prim = g.meshes[0].primitives[0]
    assert {"POSITION", "NORMAL", "COLOR_0", "_FEATURE_ID_0"} <= set(vars(prim.attributes)) - {
        k for k, v in vars(prim.attributes).items() if v is None}
    assert g.accessors[prim.attributes.POSITION].componentType == gl.FLOAT  # float32 relative to the node
    assert g.extensionsUsed == ["EXT_mesh_features", "EXT_structural_metadata"]
    tables = g.extensions["EXT_structural_metadata"]["propertyTables"]
    assert len(tables) == 1  # CesiumJS reads only the first
    props = g.extensions["EXT_structural_metadata"]["schema"]["classes"]["buildings"]["properties"]
    assert {"code", "kind", "height", "use", "base_z", "top_z"} <= set(props)
    content = read_content(path)
    normals = np.frombuffer(g.binary_blob(), np.float32, g.accessors[prim.attributes.NORMAL].count * 3,
                            g.bufferViews[g.accessors[prim.attributes.NORMAL].bufferView].byteOffset).reshape(-1, 3)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
    assert content.feature_count == len(content.table["code"])


def test_vertices_land_within_a_millimetre(sample_tiles, full_model):
    """A building corner: tile vertex (float32) + node offset, through the root transform, vs pyproj's ECEF."""
    out, _ = sample_tiles
    tileset = json.loads((out / "buildings" / "tileset.json").read_text())
    world = np.array(tileset["root"]["transform"]).reshape(4, 4).T
    with full_model.connect() as conn:
        code, x, y, top = conn.execute(
            "SELECT code, ST_X(ST_PointN(ST_ExteriorRing(geom), 1)), ST_Y(ST_PointN(ST_ExteriorRing(geom), 1)), "
            "top_z FROM city_object WHERE layer = 'buildings' ORDER BY top_z DESC LIMIT 1").fetchone()
    expected = ecef(np.array([[x, y, top]]), full_model.info.srid, find_geoid())[0]
    best = np.inf
    for content in _contents(out, "buildings").values():
        if code in content.table["code"]:
            row = content.table["code"].index(code)
            local = content.positions[content.feature == row]
            got = (np.column_stack([local, np.ones(len(local))]) @ world.T)[:, :3]
            best = np.linalg.norm(got - expected, axis=1).min()
    assert best < 0.001, best


def test_heights_are_ellipsoidal(sample_tiles, full_model):
    """The root region's heights are the model's orthometric heights plus the EGM96 geoid (about -4.4 m)."""
    out, _ = sample_tiles
    with full_model.connect() as conn:
        low, high = conn.execute("SELECT min(base_z), max(top_z) FROM city_object WHERE layer = 'buildings'").fetchone()
    region = json.loads((out / "buildings" / "index.json").read_text())["region"]
    assert abs(region[4] - (low - 4.4)) < 0.5 and abs(region[5] - (high - 4.4)) < 0.5


def test_tiles_respect_the_triangle_budget_and_coarse_levels_hold_the_big_objects(sample_tiles):
    out, _ = sample_tiles
    budget = settings().tile_max_triangles
    for name in ("buildings", "water", "water-nodes"):
        tileset = json.loads((out / name / "tileset.json").read_text())
        root = tileset["root"]
        assert root.get("children"), name  # the sample is big enough to split
        assert root["geometricError"] > 0 and tileset["geometricError"] >= root["geometricError"]
        for path in (out / name / "t").glob("*.glb"):
            g = gl.GLTF2.load_binary(str(path))
            assert g.accessors[g.meshes[0].primitives[0].indices].count // 3 <= budget, path
    contents = _contents(out, "buildings")
    root_heights = min(contents[out / "buildings" / "t" / "0.glb"].table["height"])
    leaf_heights = max(h for p, c in contents.items() if p.name != "0.glb" for h in c.table["height"])
    assert root_heights >= leaf_heights * 0.5  # tall buildings first (size also counts the footprint)


def test_cesium_loads_the_sample(sample_tiles):
    out, _ = sample_tiles
    shot = ARTIFACTS / "cesium-sample.png"
    result = cesium_load(out, "tileset.json", shot, all_tiles=True)
    assert result["ok"], {k: result.get(k) for k in ("tileFailed", "pageErrors", "consoleErrors", "failedRequests")}
    assert result["loadedByType"].get(".glb", 0) >= 12
    assert abs(result["cartographic"]["lon"] - 113.55) < 0.02 and abs(result["cartographic"]["lat"] - 22.27) < 0.02
    assert shot.stat().st_size > 20_000
