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
    "sensor": "SEN",  # IoT devices (cim/iot), bound to the objects they observe
    # BIM (IFC): the spatial structure, then element categories
    "bim_project": "BPJ",
    "bim_site": "BST",
    "bim_building": "BBD",
    "bim_storey": "BSY",
    "bim_zone": "BZN",
    "space": "SPC",
    "wall": "WAL",
    "curtain_wall": "CWL",
    "slab": "SLB",
    "roof": "ROF",
    "door": "DOR",
    "window": "WIN",
    "column": "COL",
    "beam": "BEM",
    "stair": "STR",
    "ramp": "RMP",
    "railing": "RAL",
    "covering": "COV",
    "member": "MEM",
    "plate": "PLT",
    "footing": "FTG",
    "pile": "PIL",
    "furnishing": "FUR",
    "pipe_segment": "PSG",
    "pipe_fitting": "PFT",
    "duct_segment": "DSG",
    "duct_fitting": "DFT",
    "cable_segment": "CSG",
    "cable_fitting": "CFT",
    "flow_terminal": "FTM",
    "flow_controller": "FCT",
    "flow_equipment": "FEQ",
    "control_element": "CTL",
    "proxy": "PRX",
    "bim_element": "ELM",
}

# Underground networks and their CJJ 61-2017 codes: kinds "<network>_pipe" (code JS, PS, …) and
# "<network>_node" (JSD, PSD, …: D for 点, the survey point).
NETWORKS: dict[str, str] = {"water": "JS", "drainage": "PS", "gas": "RQ", "power": "DL", "telecom": "TX",
                            "heat": "RL"}
for _net, _code in NETWORKS.items():
    KIND_ABBR[f"{_net}_pipe"] = _code
    KIND_ABBR[f"{_net}_node"] = _code + "D"
NODE_TYPES = ("junction", "tee", "valve", "hydrant", "meter", "manhole", "inlet", "outlet", "source", "tank",
              "pump", "connection", "end")
# Node types where a network may end without being a dangling-end defect.
TERMINAL_NODE_TYPES = frozenset({"hydrant", "meter", "manhole", "inlet", "outlet", "source", "tank", "connection",
                                 "end"})
# Node types that feed a pressure network (traces "from sources").
SOURCE_NODE_TYPES = frozenset({"source", "tank"})

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

# IFC classes → model kinds, most specific first (the first class an entity is_a() wins). IFC2X3's generic
# flow classes are refined by their type object in cim.importers.ifc.elements.
IFC_KINDS: tuple[tuple[str, str], ...] = (
    ("IfcSpace", "space"),
    ("IfcCurtainWall", "curtain_wall"), ("IfcWall", "wall"), ("IfcRoof", "roof"), ("IfcSlab", "slab"),
    ("IfcDoor", "door"), ("IfcWindow", "window"), ("IfcColumn", "column"), ("IfcBeam", "beam"),
    ("IfcStair", "stair"), ("IfcStairFlight", "stair"), ("IfcRamp", "ramp"), ("IfcRampFlight", "ramp"),
    ("IfcRailing", "railing"), ("IfcCovering", "covering"), ("IfcMember", "member"), ("IfcPlate", "plate"),
    ("IfcFooting", "footing"), ("IfcPile", "pile"), ("IfcFurnishingElement", "furnishing"),
    ("IfcPipeSegment", "pipe_segment"), ("IfcPipeFitting", "pipe_fitting"),
    ("IfcDuctSegment", "duct_segment"), ("IfcDuctFitting", "duct_fitting"),
    ("IfcCableSegment", "cable_segment"), ("IfcCableCarrierSegment", "cable_segment"),
    ("IfcCableFitting", "cable_fitting"), ("IfcCableCarrierFitting", "cable_fitting"),
    ("IfcFlowTerminal", "flow_terminal"), ("IfcFlowController", "flow_controller"),
    ("IfcFlowMovingDevice", "flow_equipment"), ("IfcFlowStorageDevice", "flow_equipment"),
    ("IfcFlowTreatmentDevice", "flow_equipment"), ("IfcEnergyConversionDevice", "flow_equipment"),
    ("IfcDistributionControlElement", "control_element"), ("IfcBuildingElementProxy", "proxy"),
)
# Spatial structure → kinds (any other spatial element, e.g. an IFC4X3 facility part, is a bim_building part).
IFC_SPATIAL_KINDS: dict[str, str] = {
    "IfcProject": "bim_project", "IfcSite": "bim_site", "IfcBuilding": "bim_building",
    "IfcBuildingStorey": "bim_storey",
}


def abbr(kind: str) -> str:
    return KIND_ABBR.get(kind, "OBJ")


def pipe_kind(network: str) -> str:
    return f"{network}_pipe"


def node_kind(network: str) -> str:
    return f"{network}_node"


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
