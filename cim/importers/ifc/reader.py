"""Open an IFC file whole or refuse it with one line: not STEP, unsupported schema, truncated, unparsable."""

from __future__ import annotations

import re
from pathlib import Path

import ifcopenshell

from cim.importers.common import check_source
from cim.importers.errors import InputError

SUPPORTED_SCHEMAS = ("IFC2X3", "IFC4", "IFC4X3", "IFC4X3_ADD2")
_SCHEMA = re.compile(rb"FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'", re.IGNORECASE)
_ERROR = re.compile(r"\[error\](?: \[[^\]]*\])* (.*?)(?: at offset (\d+))?$")


def _header(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(64 * 1024)


def _tail(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4096))
        return fh.read()


def open_ifc(path: Path) -> ifcopenshell.file:
    """The parsed file, after checking it is STEP, of a supported schema, complete and free of syntax errors."""
    check_source(path)
    head = _header(path)
    if not head.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"ISO-10303-21;"):
        if head.lstrip().startswith(b"PK"):
            raise InputError(path, "not an IFC file (a zip archive: unpack .ifczip first)")
        raise InputError(path, "not an IFC file (no ISO-10303-21 STEP header)")
    match = _SCHEMA.search(head)
    if match is None:
        raise InputError(path, "not an IFC file (no FILE_SCHEMA in the header)")
    schema = match.group(1).decode("ascii", "replace").upper()
    unsupported = f"unsupported IFC schema {schema} (supported: {', '.join(SUPPORTED_SCHEMAS)})"
    if schema not in SUPPORTED_SCHEMAS:
        raise InputError(path, unsupported)
    # A cut-off file parses "fine" into whatever came before the cut, so insist on the STEP trailer.
    if not re.search(rb"END-ISO-10303-21;\s*(/\*.*\*/\s*)*$", _tail(path), re.DOTALL):
        raise InputError(path, "truncated file (it does not end with END-ISO-10303-21;)")
    ifcopenshell.get_log()  # clear what an earlier file left
    try:
        f = ifcopenshell.open(str(path))
    except ifcopenshell.SchemaError:
        raise InputError(path, unsupported) from None
    except (ifcopenshell.Error, RuntimeError, OSError) as exc:
        raise InputError(path, f"cannot parse the IFC file: {exc}") from None
    errors = [line for line in ifcopenshell.get_log().splitlines() if "[error]" in line]
    if errors:
        found = _ERROR.search(errors[0])
        reason, offset = (found.group(1), found.group(2)) if found else (errors[0], None)
        where = f"at byte {offset}" if offset else None
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise InputError(path, f"syntax error: {reason}{more}", where)
    if not f.by_type("IfcProject"):
        raise InputError(path, "no IfcProject: not a complete IFC model")
    return f
