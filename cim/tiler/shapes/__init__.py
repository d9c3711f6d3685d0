"""Mesh builders: one per kind of stored geometry (prisms, surfaces, tubes, node solids, terrain grids)."""
