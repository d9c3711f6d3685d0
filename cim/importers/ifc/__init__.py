"""BIM/IFC import: reader, georeferencing, elements and hierarchy, geometry, and the importer itself."""

from cim.importers.ifc.importer import IfcImport, import_ifc

__all__ = ["IfcImport", "import_ifc"]
