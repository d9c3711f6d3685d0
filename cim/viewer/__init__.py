"""The planners' web viewer at /viewer: a CesiumJS page (CesiumJS from npm, served locally; no Cesium ion, no
internet imagery or terrain) over the tilesets `cim tile` wrote, the ground it made from the DEM and GIS layers,
and the API's objects, analyses and live IoT states."""

# Served without a key even when reads need one: the page and its code, not the model's data.
PUBLIC_PREFIXES = ("/viewer/app/", "/viewer/cesium/")
PUBLIC_PATHS = ("/viewer", "/viewer/")


def is_public(path: str) -> bool:
    """Whether a request path is the viewer's own code."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
