"""cim: a city information model joining GIS, BIM and IoT in one PostGIS-backed model."""

__version__ = "0.1.0"
