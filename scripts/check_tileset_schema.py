"""Validate every tileset.json under a directory against the 3D Tiles 1.1 JSON schemas (draft 2020-12).

Prints "ok PATH" or "PATH: error at JSON-POINTER: MESSAGE" (at most a few errors per tileset), then a summary;
exits 1 when any tileset fails (or none is found), 2 on bad arguments or a broken schema directory.

Besides the schema (which accepts any extension object under "extensions"), it checks the extension
bookkeeping the schema cannot express: every extension used in an "extensions" object is listed in
"extensionsUsed", and every entry of "extensionsRequired" is also in "extensionsUsed". External tilesets
referenced by a content URI ending in .json are validated too, whatever their file name.

The schema files refer to each other by relative file names ($ref "../common/rootProperty.schema.json") and
carry bare file names as $id ("tileset.schema.json"); each is registered under a made-up absolute URI that
mirrors its place in SCHEMA_DIR, so all $refs resolve inside the registry and nothing is fetched.

usage: python scripts/check_tileset_schema.py TILES_DIR SCHEMA_DIR
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

BASE_URI = "https://schemas.invalid/3d-tiles/"  # never fetched: .invalid is a reserved TLD
ROOT_SCHEMA = "tileset.schema.json"
MAX_ERRORS = 5  # per tileset


def _no_network(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def load_registry(schema_dir: Path) -> Registry:
    """All *.schema.json files of schema_dir, each under BASE_URI + its path; checks every schema and $ref."""
    files = sorted(schema_dir.rglob("*.schema.json"))
    if not files:
        raise SystemExit(f"no *.schema.json files in {schema_dir}")
    resources = []
    for path in files:
        contents = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(contents)  # against the 2020-12 metaschema (bundled, offline)
        uri = BASE_URI + path.relative_to(schema_dir).as_posix()
        contents = {**contents, "$id": uri}  # the bare-file-name $id, resolved against where the file lives
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT202012)))
    registry = Registry(retrieve=_no_network).with_resources(resources).crawl()
    if BASE_URI + ROOT_SCHEMA not in registry:
        raise SystemExit(f"{schema_dir} has no {ROOT_SCHEMA}")
    for uri, resource in resources:
        resolver = registry.resolver(base_uri=uri)
        for ref in _refs(resource.contents):
            try:
                resolver.lookup(ref)
            except Unresolvable as exc:
                raise SystemExit(f"{uri.removeprefix(BASE_URI)}: $ref {ref!r} does not resolve ({exc})") from exc
    return registry


def pointer(parts: Any) -> str:
    """RFC 6901 JSON pointer of a path of keys and indices ("" is the document itself)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _describe(error: ValidationError) -> tuple[str, str]:
    """(pointer, message); for anyOf/oneOf failures, the most relevant sub-error is appended."""
    message = error.message
    if error.context:
        sub = best_match(error.context)
        message += f" (e.g. at {pointer(sub.absolute_path) or '(root)'}: {sub.message})"
    return pointer(error.absolute_path), message


def extension_errors(tileset: Any) -> list[tuple[str, str]]:
    if not isinstance(tileset, dict):
        return []
    used = tileset.get("extensionsUsed", [])
    required = tileset.get("extensionsRequired", [])
    used = set(used) if isinstance(used, list) else set()
    errors = []
    if isinstance(required, list):
        for i, name in enumerate(required):
            if name not in used:
                errors.append((f"/extensionsRequired/{i}", f"{name!r} is required but not in extensionsUsed"))

    def walk(node: Any, parts: list) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "extras":  # application-specific, not 3D Tiles
                    continue
                if key == "extensions" and isinstance(value, dict):
                    for name in sorted(value.keys() - used):
                        errors.append((pointer([*parts, key, name]), f"extension {name!r} is not in extensionsUsed"))
                walk(value, [*parts, key])
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, [*parts, i])

    walk(tileset, [])
    return errors


def external_tilesets(tileset: Any, path: Path) -> Iterator[Path]:
    """Local .json files referenced as tile content (external tilesets); template URIs are skipped."""

    def uris(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key in ("content", "contents"):
                value = node.get(key)
                for content in value if isinstance(value, list) else [value]:
                    if isinstance(content, dict) and isinstance(content.get("uri"), str):
                        yield content["uri"]
            for value in node.get("children", []) if isinstance(node.get("children"), list) else []:
                yield from uris(value)

    root = tileset.get("root") if isinstance(tileset, dict) else None
    for uri in uris(root):
        target = uri.split("?")[0].split("#")[0]
        if target.lower().endswith(".json") and "{" not in target and "://" not in target:
            candidate = path.parent / target
            if candidate.is_file():
                yield candidate


def check(path: Path, validator: Draft202012Validator) -> tuple[list[tuple[str, str]], Any]:
    try:
        tileset = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [("", f"cannot read JSON: {exc}")], None
    errors = sorted(validator.iter_errors(tileset), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [_describe(e) for e in errors] + extension_errors(tileset), tileset


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not Path(argv[1]).is_dir() or not Path(argv[2]).is_dir():
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    tiles_dir, schema_dir = Path(argv[1]), Path(argv[2])
    try:
        registry = load_registry(schema_dir)
    except SystemExit as exc:
        print(f"bad schema dir: {exc}", file=sys.stderr)
        return 2
    validator = Draft202012Validator({"$ref": BASE_URI + ROOT_SCHEMA}, registry=registry)

    queue = sorted(tiles_dir.rglob("tileset.json"))
    seen = {p.resolve() for p in queue}
    n_bad = n_done = 0
    while queue:
        path = queue.pop(0)
        errors, tileset = check(path, validator)
        n_done += 1
        if errors:
            n_bad += 1
            for where, message in errors[:MAX_ERRORS]:
                print(f"{path}: error at {where or '(root)'}: {message}")
            if len(errors) > MAX_ERRORS:
                print(f"{path}: ... and {len(errors) - MAX_ERRORS} more errors")
        else:
            print(f"ok {path}")
        for external in external_tilesets(tileset, path):
            if external.resolve() not in seen:
                seen.add(external.resolve())
                queue.append(external)

    if not n_done:
        print(f"no tileset.json under {tiles_dir}")
    print(f"{n_done} tilesets: {n_done - n_bad} ok, {n_bad} with errors")
    return 1 if n_bad or not n_done else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
