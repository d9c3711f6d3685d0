"""`cim tile`: 3D Tiles of the model, rewriting only the tiles whose objects changed."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from cim.cli.main import ModelOpt, _open, app, err, fail, guarded, out


class RateColumn(ProgressColumn):
    """Tiles written per second."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} tiles/s" if task.speed else "", style="progress.data.speed")


@app.command("tile")
def tile_cmd(
    layer: list[str] = typer.Option(None, "--layer", "-l",
                                    help="Only this tileset (repeatable): terrain, a layer, or <layer>-nodes."),
    out_dir: Path = typer.Option(Path("tiles"), "--out", "-o", help="Where the tilesets go (tileset.json at top)."),
    full: bool = typer.Option(False, "--full", help="Rewrite every tile, not only those whose objects changed."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", metavar="ADDRESS",
        help="Run the tiles' work on this Dask distributed scheduler (tcp://host:port); its workers must reach the "
             "model's database and see --out."),
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=1,
        help="Local processes without --scheduler (default: every core; 1 = this process only)."),
    chunk: int | None = typer.Option(None, "--chunk", min=1,
                                     help="Objects per task (a spatial chunk of consecutive tiles; default 5000)."),
    model: str | None = ModelOpt,
) -> None:
    """Write one 3D Tiles 1.1 tileset per layer and a root tileset referencing them."""
    from cim.tiler.build import CHUNK_OBJECTS, build_tiles, describe
    from cim.tiler.parallel import SchedulerError

    m = _open(model)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"tiles {name}", total=total)
            bar.update(tasks[name], completed=done)

        try:
            report = guarded(lambda: build_tiles(m, out_dir, layer or None, full, progress, scheduler, workers,
                                                 chunk or CHUNK_OBJECTS))
        except SchedulerError as exc:
            fail(str(exc))
    for line in describe(report):
        out.print(line)
    out.print(f"{report.tiles_written} of {report.tiles} tiles rewritten → {out_dir / 'tileset.json'} "
              f"({report.executor})")
