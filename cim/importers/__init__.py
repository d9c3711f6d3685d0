"""Readers that turn source files (GIS layers, DEMs, CityJSON, …) into city-model records."""
