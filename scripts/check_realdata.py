"""Import the public real-data files of ../shared/realdata into models whose storage CRS suits them and
check that they land where they are in the world. Run by CI when shared/ is present.

usage: python scripts/check_realdata.py REALDATA_DIR
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cim.config import settings
from cim.db.cluster import LocalCluster
from cim.db.server import drop_database, model_url
from cim.model.store import Model

# (model, storage CRS, imports, expected lon/lat box of every object)
CHECKS = [
    ("cim_real_delft", "EPSG:28992", [["cityjson", "citymodel/cjio__delft.json"]], (4.33, 51.98, 4.40, 52.03)),
    ("cim_real_brussels", "EPSG:31370",
     [["gis", "citymodel/raytracing__place_saint_jean_osm.geojson", "--layer", "buildings"]],
     (4.345, 50.840, 4.362, 50.850)),
    ("cim_real_ky4", "EPSG:32616",
     [["dem", "dem/wntr__ky4_elevation.tif"],  # heights in US survey feet, like its CRS
      ["gis", "gis/wntr__ky4_pipes.geojson", "--layer", "pipes", "--kind", "generic"],
      ["gis", "gis/wntr__ky4_junctions.geojson", "--layer", "junctions", "--kind", "generic"]],
     (-89.6, 36.5, -81.9, 39.2)),
]


def main(realdata: Path) -> int:
    if not settings().database_url:
        LocalCluster().up()
    failures = 0
    for name, crs, imports, (w, s, e, n) in CHECKS:
        url = model_url(name)
        drop_database(url)
        subprocess.run([sys.executable, "-m", "cim", "db", "init", "--crs", crs, "--model", name], check=True,
                       stdout=subprocess.DEVNULL)
        for verb, file, *args in imports:
            done = subprocess.run([sys.executable, "-m", "cim", "import", verb, str(realdata / file), *args,
                                   "--model", name], capture_output=True, text=True)
            status = "ok" if done.returncode == 0 else f"FAILED: {done.stderr.strip()}"
            failures += done.returncode != 0
            print(f"{name}: import {verb} {file}: {status}")
        with Model.open(name).connect() as conn:
            count, outside, bounds = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE NOT ST_Within(ST_Transform(ST_Envelope(geom), 4326), "
                "ST_MakeEnvelope(%s, %s, %s, %s, 4326))), ST_AsText(ST_Transform(ST_SetSRID(ST_Extent(geom), "
                "%s), 4326)) FROM city_object",
                (w, s, e, n, int(crs.split(":")[1])),
            ).fetchone()
        print(f"{name}: {count} objects, {outside} outside the expected area; extent {bounds}")
        failures += outside > 0 or count == 0
        drop_database(url)
    print(f"real data: {'all placed right' if not failures else f'{failures} problem(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
