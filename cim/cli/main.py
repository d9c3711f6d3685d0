"""`cim`: database, model, imports and sample data from one command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from cim.config import settings

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="City information model: GIS + BIM + IoT in one PostGIS model.")
db_app = typer.Typer(no_args_is_help=True, help="The database server and city models.")
import_app = typer.Typer(no_args_is_help=True, help="Import sources into a city model (one transaction each).")
sample_app = typer.Typer(no_args_is_help=True, help="The synthetic sample district.")
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(sample_app, name="sample")

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True)

ModelOpt = typer.Option(None, "--model", "-m", help="Model (database) name; default CIM_MODEL or 'cim'.")


def fail(message: str, code: int = 2) -> None:
    """One line on stderr (driver messages can span lines) and a non-zero exit."""
    err.print("[bold red]error:[/] " + escape(" ".join(str(message).split())), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn):
    """Run a command body; expected errors become one line on stderr and a non-zero exit."""
    import psycopg

    from cim.db.cluster import ClusterError
    from cim.importers.errors import InputError
    from cim.model.store import ModelError

    try:
        return fn()
    except (InputError, ModelError, ClusterError) as exc:
        fail(str(exc))
    except psycopg.OperationalError as exc:
        fail(f"database server: {exc}; is it running (cim db status)?")
    except psycopg.Error as exc:
        fail(f"database: {exc}")
    except KeyboardInterrupt:
        fail("interrupted; nothing of the unfinished import was kept", 130)


# -- db -------------------------------------------------------------------------------------------
@db_app.command("up")
def db_up() -> None:
    """Start the project-local PostgreSQL+PostGIS cluster (no-op when running)."""
    from cim.db.cluster import LocalCluster

    if settings().database_url:
        out.print("CIM_DATABASE_URL is set: using that server, no local cluster needed")
        return
    cluster = LocalCluster()
    did = guarded(cluster.up)
    out.print(f"local cluster {did}: port {cluster.port}, data dir {cluster.data_dir}")


@db_app.command("down")
def db_down() -> None:
    """Stop the local cluster."""
    from cim.db.cluster import LocalCluster

    out.print(f"local cluster {guarded(LocalCluster().down)}")


@db_app.command("status")
def db_status() -> None:
    """Whether the server runs and accepts connections (exit 1 when it does not)."""
    from cim.db.cluster import LocalCluster

    if settings().database_url:
        import psycopg

        from cim.db.server import connect, model_url

        url = model_url()
        shown = url.set(database=None).render_as_string()
        try:
            with connect(url.set(database="postgres"), connect_timeout=5) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
                has_model = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                         (url.database,)).fetchone() is not None
        except psycopg.OperationalError as exc:
            fail(f"{shown}: not reachable: {exc}", 1)
        model_state = "exists" if has_model else "not created yet (cim db init)"
        out.print(f"external server {shown}: PostgreSQL {version}, accepting connections; "
                  f"model database {url.database!r} {model_state}")
        return
    st = guarded(LocalCluster().status)
    out.print(f"local cluster {st.describe()}")
    if not st.accepting:
        raise typer.Exit(1)


@db_app.command("url")
def db_url(model: str | None = ModelOpt) -> None:
    """Print the SQLAlchemy URL of a model's database."""
    from cim.db.server import model_url

    print(model_url(model).render_as_string(hide_password=False))


@db_app.command("init")
def db_init(
    crs: str = typer.Option("EPSG:4547", help="Storage CRS (projected, metres); fixed for the model's life."),
    model: str | None = ModelOpt,
    area_code: str = typer.Option(None, help="Area prefix of unified codes (default CIM_AREA_CODE)."),
    vertical_datum: str = typer.Option("orthometric (national height datum)", help="What heights mean."),
) -> None:
    """Create a city model (a database) with its storage CRS; re-running is a no-op."""
    from cim.db.server import model_url
    from cim.model.store import init_model

    url = model_url(model)
    info, created = guarded(lambda: init_model(url, crs, area_code or settings().area_code, vertical_datum))
    verb = "created" if created else "already exists:"
    out.print(f"model {info.name!r} {verb} storage CRS EPSG:{info.srid} ({info.crs_name}), "
              f"codes {info.area_code}-…")


@db_app.command("drop")
def db_drop(model: str = typer.Option(..., "--model", "-m", help="Model to delete, with all its objects."),
            yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a city model (its database)."""
    from cim.db.server import drop_database, model_url

    if not yes:
        typer.confirm(f"drop model {model!r} and everything in it?", abort=True)
    guarded(lambda: drop_database(model_url(model)))
    out.print(f"model {model!r} dropped")


# -- import ---------------------------------------------------------------------------------------
def _open(model: str | None):
    from cim.model.store import Model

    return guarded(lambda: Model.open(model))


def _done(what: str, result, started: float) -> None:
    took = time.perf_counter() - started
    rate = result.written / took if took else 0
    moved = f", moved from other files {result.moved}" if result.moved else ""
    out.print(f"{what}: {result.written} objects (replaced {result.replaced}{moved}, new codes {result.new_codes}) "
              f"in batch {result.batch_id}, {took:.1f} s, {rate:,.0f} objects/s")


@import_app.command("dem")
def import_dem_cmd(
    file: Path = typer.Argument(..., help="GeoTIFF or any raster GDAL reads."),
    crs: str | None = typer.Option(None, help="CRS of the raster when it has none."),
    layer: str = typer.Option("terrain", help="Model layer."),
    z_unit: str = typer.Option("auto", help="Unit of the raster's heights: auto (the CRS's unit), m, ft, us-ft."),
    model: str | None = ModelOpt,
) -> None:
    """Register a DEM as terrain: ground heights for every later import."""
    from cim.importers.dem import Z_UNITS, import_dem

    if z_unit not in Z_UNITS and z_unit != "auto":
        fail(f"--z-unit must be auto or one of {', '.join(Z_UNITS)}")
    m = _open(model)
    started = time.perf_counter()
    result = guarded(lambda: import_dem(m, file, layer, crs, z_unit))
    _done(f"{file.name} → {layer}", result, started)


@import_app.command("gis")
def import_gis_cmd(
    file: Path = typer.Argument(..., help="Shapefile, GeoPackage, GeoJSON, FlatGeobuf, …"),
    layer: str = typer.Option(..., "--layer", "-l", help="Model layer, e.g. buildings, roads."),
    crs: str | None = typer.Option(None, help="CRS of the source when the file has none (e.g. EPSG:4547)."),
    mapping: Path | None = typer.Option(None, help="TOML/JSON mapping of model attributes to fields."),
    kind: str | None = typer.Option(None, help="Object kind (default from the layer name)."),
    source_layer: str | None = typer.Option(None, help="Layer inside a multi-layer file."),
    storey_height: float | None = typer.Option(None, help="Metres per floor (default CIM_STOREY_HEIGHT)."),
    default_height: float | None = typer.Option(None, help="Height when neither height nor floors."),
    strict: bool = typer.Option(False, help="Fail on non-polygon records in a building layer instead of "
                                "skipping them."),
    model: str | None = ModelOpt,
) -> None:
    """Import a GIS layer; building footprints become LOD1 blocks on the terrain."""
    from cim.importers.gis import import_gis

    m = _open(model)
    started = time.perf_counter()
    done = guarded(lambda: import_gis(m, file, layer, kind, crs, mapping, source_layer, storey_height,
                                      default_height, strict))
    _done(f"{file.name} → {layer}", done.result, started)
    for key in ("height_rules", "base_rules"):
        if key in done.summary:
            rules = ", ".join(f"{v} by {k}" for k, v in done.summary[key].items())
            out.print(f"  {key.replace('_', ' ')}: {rules}")
    out.print(f"  codes keyed by {done.summary['key_rule']}")
    if done.summary.get("skipped_count"):
        count, first = done.summary["skipped_count"], done.summary["skipped"][:5]
        err.print(f"warning: {file}: skipped {count} non-polygon record(s): {', '.join(first)}"
                  + (" …" if count > 5 else ""))
    if done.summary.get("repaired_geometries"):
        out.print(f"  repaired invalid geometries: {done.summary['repaired_geometries']}")


def _pipe_report(file: Path, done) -> None:
    """The topology and data defects an import found, one line each."""
    s = done.summary
    nodes = ", ".join(f"{v} {k}" for k, v in s["nodes"].items())
    out.print(f"  {s['pipes']} pipes ({s['length_km']} km), nodes: {nodes}")
    if s.get("links"):
        out.print("  links: " + ", ".join(f"{v} {k}" for k, v in s["links"].items()))
    out.print(f"  topology: {s['topology']}; heights: "
              + ", ".join(f"{v} by {k}" for k, v in s["height_rules"].items()))
    for key in ("zero_length", "duplicates", "self_intersecting", "dangling_ends", "unconnected_points",
                "points_on_one_spot", "ends_away_from_their_point"):
        found = s.get(key)
        if found and found["count"]:
            first = ", ".join(found["ids"][:5]) + (" …" if found["count"] > 5 else "")
            err.print(f"warning: {file}: {found['count']} {key.replace('_', ' ')}: {first}")
    for key in ("reversed_to_flow", "flat_or_rising", "no_size", "lines_split_at_points"):
        if s.get(key):
            out.print(f"  {key.replace('_', ' ')}: {s[key]}")


@import_app.command("pipes")
def import_pipes_cmd(
    file: Path = typer.Argument(..., help="Pipe lines (and points) in any GIS format: GeoPackage, Shapefile, …"),
    network: str = typer.Option(..., help="water, drainage, gas, power, telecom or heat."),
    points: list[Path] = typer.Option(None, "--points", help="Extra file(s) of pipe points (repeatable)."),
    layer: str | None = typer.Option(None, "--layer", "-l", help="Model layer (default: the network name)."),
    crs: str | None = typer.Option(None, help="CRS of the sources when the files have none."),
    mapping: Path | None = typer.Option(None, help="TOML/JSON: [lines] and [points] fields, [options]."),
    source_layer: list[str] = typer.Option(None, help="Layer(s) inside a multi-layer file (repeatable)."),
    snap: float | None = typer.Option(None, help="Snapping tolerance in m (default CIM_PIPE_SNAP_TOLERANCE)."),
    model: str | None = ModelOpt,
) -> None:
    """Import an underground pipe network from GIS layers (CJJ 61-2017 field names by default)."""
    from cim.importers.pipes.gis import check_network, import_pipes

    guarded(lambda: check_network(network, mapping or file))
    m = _open(model)
    started = time.perf_counter()
    done = guarded(lambda: import_pipes(m, file, network, layer, points or None, crs, mapping,
                                        source_layer or None, snap))
    _done(f"{file.name} → {layer or network}", done.result, started)
    _pipe_report(file, done)


@import_app.command("epanet")
def import_epanet_cmd(
    file: Path = typer.Argument(..., help="EPANET .inp network."),
    crs: str = typer.Option(..., help="CRS of the [COORDINATES], e.g. EPSG:4547."),
    layer: str = typer.Option("water", "--layer", "-l", help="Model layer."),
    model: str | None = ModelOpt,
) -> None:
    """Import an EPANET water network: junctions, reservoirs, tanks, pipes, pumps, valves."""
    from cim.importers.pipes.epanet import import_epanet

    m = _open(model)
    started = time.perf_counter()
    done = guarded(lambda: import_epanet(m, file, crs, layer))
    _done(f"{file.name} → {layer}", done.result, started)
    _pipe_report(file, done)


@import_app.command("cityjson")
def import_cityjson_cmd(
    file: Path = typer.Argument(..., help="CityJSON 1.0/1.1/2.0 file."),
    layer: str = typer.Option("citymodel", help="Model layer."),
    crs: str | None = typer.Option(None, help="CRS when metadata.referenceSystem is missing."),
    lod: str | None = typer.Option(None, help="Import this LoD only (default: each object's highest)."),
    model: str | None = ModelOpt,
) -> None:
    """Import CityJSON city objects (LoD1/LoD2 buildings and others) as 3D surfaces."""
    from cim.importers.cityjson import import_cityjson

    m = _open(model)
    started = time.perf_counter()
    result, summary = guarded(lambda: import_cityjson(m, file, layer, crs, lod))
    _done(f"{file.name} → {layer}", result, started)
    out.print("  kinds: " + ", ".join(f"{v} {k}" for k, v in summary["kinds"].items()))
    for reason, n in summary["skipped"].items():
        err.print(f"warning: {file}: skipped {n} city object(s): {reason}")


def _anchor(value: str | None) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        lon, lat, *h = (float(v) for v in value.split(","))
        if len(h) > 1:
            raise ValueError
    except ValueError:
        fail(f"--anchor {value!r}: expected LON,LAT or LON,LAT,H in degrees and metres")
    return lon, lat, h[0] if h else 0.0


@import_app.command("ifc")
def import_ifc_cmd(
    file: Path = typer.Argument(..., help="IFC2X3, IFC4 or IFC4X3_ADD2 file (.ifc)."),
    anchor: str | None = typer.Option(None, help="LON,LAT,H of the project origin when the file is not "
                                      "georeferenced (WGS 84 degrees, orthometric metres)."),
    rotation: float | None = typer.Option(None, help="Azimuth of the project's +Y axis in degrees clockwise "
                                          "from true north (with --anchor or an IfcSite reference)."),
    building_code: str | None = typer.Option(None, help="Unified code or source id of the GIS building this "
                                             "model stands for (default: Pset_BuildingCommon.BuildingID)."),
    crs: str | None = typer.Option(None, help="Map CRS when the file names none (or an unknown one); alone, "
                                   "says the model's coordinates already are map coordinates."),
    layer: str = typer.Option("bim", help="Model layer."),
    ignore_georef: bool = typer.Option(False, help="Ignore the file's georeferencing and use --anchor/--crs."),
    model: str | None = ModelOpt,
) -> None:
    """Import a BIM model: every element with its IFC data, placed by its georeferencing."""
    from cim.importers.ifc import import_ifc

    where = _anchor(anchor)
    m = _open(model)
    started = time.perf_counter()
    done = guarded(lambda: import_ifc(m, file, layer, where, rotation, crs, building_code, ignore_georef))
    out.print(f"{file.name}: {done.placement.describe()}")
    rule, note = done.placement.rule, done.placement.note
    if where is not None and rule != "--anchor":
        err.print(f"warning: {file}: --anchor ignored, the file is georeferenced ({rule}); "
                  "pass --ignore-georef to force it")
    if rotation is not None and "--rotation" not in note:
        err.print(f"warning: {file}: --rotation ignored, {rule} gives the rotation")
    if crs is not None and "--crs" not in note and rule != "--crs":
        err.print(f"warning: {file}: --crs ignored, {rule} places the model")
    _done(f"{file.name} → {layer}", done.result, started)
    out.print("  kinds: " + ", ".join(f"{v} {k}" for k, v in done.summary["kinds"].items()))
    if done.summary.get("building_code"):
        out.print(f"  stands for building {done.summary['building_code']}")
    if done.summary.get("building_note"):
        err.print(f"warning: {file}: {done.summary['building_note']}")
    for reason, n in done.summary["skipped"].items():
        err.print(f"warning: {file}: skipped {n} {reason}")
    if done.summary["geometry_errors"]:
        err.print(f"warning: {file}: ifcopenshell reported {done.summary['geometry_errors']} geometry error(s), "
                  f"the first: {escape(done.summary['first_geometry_error'])}")


# -- model summary --------------------------------------------------------------------------------
@app.command("info")
def info(model: str | None = ModelOpt) -> None:
    """What a model holds: CRS and objects per layer and kind."""
    m = _open(model)
    counts = m.counts()
    out.print(f"model {m.info.name!r}: EPSG:{m.info.srid} ({m.info.crs_name}), heights {m.info.vertical_datum}")
    for layer, kind, n in counts:
        out.print(f"  {layer:<16} {kind:<14} {n:>8}")
    out.print(f"  total: {sum(n for *_, n in counts)} objects")


# -- sample ---------------------------------------------------------------------------------------
@sample_app.command("generate")
def sample_generate(
    out_dir: Path = typer.Option(Path("sample_data/build"), "--out", help="Where to write the files."),
    seed: int | None = typer.Option(None, help="Random seed (default: the documented one)."),
) -> None:
    """Write the synthetic Zhuhai district: DEM, GIS layers, CityJSON landmarks, a BIM building (IFC4), pipe
    networks (GeoPackage, EPANET), a utility tunnel (CityJSON) and 300 sensors (GeoJSON)."""
    from cim.sample.district import DEFAULT_SEED, generate

    out_dir.mkdir(parents=True, exist_ok=True)
    files = generate(out_dir, seed if seed is not None else DEFAULT_SEED)
    for name, path in files.items():
        out.print(f"  {name:<9} {path}")


from cim.cli.pipes import pipes_app  # noqa: E402  (it builds on the helpers above)

app.add_typer(pipes_app, name="pipes")
import cim.cli.iot  # noqa: E402,F401  (registers import sensors, iot)
import cim.cli.pipes_checks  # noqa: E402,F401  (registers pipes clearance, excavation, profile)
import cim.cli.serve  # noqa: E402,F401  (registers serve, api-key)
import cim.cli.tiles  # noqa: E402,F401  (registers tile)


def main() -> None:  # pragma: no cover - entry point for `python -m cim`
    app(prog_name="cim")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
