"""Analyses on the city model: pipe network traces, isolation, clearances, excavation, profiles."""
