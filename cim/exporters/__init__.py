"""Writers of model data to exchange formats."""
