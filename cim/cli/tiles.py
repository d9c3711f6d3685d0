"""`cim tile`: 3D Tiles of the model, rewriting only the tiles whose objects changed."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cim.cli.main import ModelOpt, _open, app, err, guarded, out


@app.command("tile")
def tile_cmd(
    layer: list[str] = typer.Option(None, "--layer", "-l",
                                    help="Only this tileset (repeatable): terrain, a layer, or <layer>-nodes."),
    out_dir: Path = typer.Option(Path("tiles"), "--out", "-o", help="Where the tilesets go (tileset.json at top)."),
    full: bool = typer.Option(False, "--full", help="Rewrite every tile, not only those whose objects changed."),
    model: str | None = ModelOpt,
) -> None:
    """Write one 3D Tiles 1.1 tileset per layer and a root tileset referencing them."""
    from cim.tiler.build import build_tiles, describe

    m = _open(model)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"tiles {name}", total=total)
            bar.update(tasks[name], completed=done)

        report = guarded(lambda: build_tiles(m, out_dir, layer or None, full, progress))
    for line in describe(report):
        out.print(line)
    out.print(f"{report.tiles_written} of {report.tiles} tiles rewritten → {out_dir / 'tileset.json'}")
