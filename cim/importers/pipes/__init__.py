"""Underground pipe networks: GIS layers (CJJ 61-2017 fields) and EPANET .inp files."""
