"""City model → OGC 3D Tiles 1.1 (glTF 2.0 + EXT_mesh_features + EXT_structural_metadata)."""
