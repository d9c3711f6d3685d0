"""Object kinds of the city model and the abbreviation each contributes to the unified code."""

from __future__ import annotations

KIND_ABBR: dict[str, str] = {
    "terrain": "TER",
    "building": "BLD",
    "building_part": "BLP",
    "road": "RD",
    "railway": "RW",
    "bridge": "BRG",
    "tunnel": "TUN",
    "water": "WTR",
    "landuse": "LU",
    "vegetation": "VEG",
    "city_furniture": "CF",
    "generic": "OBJ",
}

# CityJSON object types → model kinds (types not listed become "generic").
CITYJSON_KINDS: dict[str, str] = {
    "Building": "building",
    "BuildingPart": "building_part",
    "Road": "road",
    "Railway": "railway",
    "TransportSquare": "road",
    "Bridge": "bridge",
    "BridgePart": "bridge",
    "Tunnel": "tunnel",
    "TunnelPart": "tunnel",
    "WaterBody": "water",
    "LandUse": "landuse",
    "PlantCover": "vegetation",
    "SolitaryVegetationObject": "vegetation",
    "CityFurniture": "city_furniture",
    "GenericCityObject": "generic",
}


def abbr(kind: str) -> str:
    return KIND_ABBR.get(kind, "OBJ")


def kind_for_layer(layer: str) -> str:
    """Guess the kind of a GIS layer from its name (buildings → building, roads → road, …)."""
    name = layer.lower()
    for key, kind in (
        ("build", "building"), ("bldg", "building"), ("road", "road"), ("street", "road"),
        ("rail", "railway"), ("bridge", "bridge"), ("river", "water"), ("water", "water"),
        ("lake", "water"), ("landuse", "landuse"), ("land_use", "landuse"), ("veg", "vegetation"),
        ("tree", "vegetation"), ("park", "vegetation"),
    ):
        if key in name:
            return kind
    return "generic"
