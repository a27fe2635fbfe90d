"""Feed specifications: what each department exports and how it maps onto the contract.

Each department has a YAML file in ``specs/`` with a ``department`` name, a
``precedence`` (the lower number wins when two feeds deliver the same
contract row in the same delivery) and a list of ``exports``. An export has:

- ``name``, ``title`` and ``files``: glob patterns of its file names, by
  default ``<department>_<name>.*`` and ``<department>_<name>-*``;
- ``role``: ``table`` (the default), or ``households`` and ``members`` for
  the household roster that links persons to households;
- ``target``: the contract table it fills;
- ``key``: the source columns that make one of its rows unique;
- ``columns``: each source column with its ``type`` (identity, region,
  township, month, date, year, number, integer, code, flag or text), and
  where needed a strptime ``format``, ``codes`` (department code to contract
  value), a ``scale`` to yuan (0.01 for fen), ``nullable`` (empty cells
  allowed) and ``optional`` (the column may be absent);
- ``mapping``: each contract column from a source column (``from``, with
  ``link: household``, ``person`` or ``head`` for identity numbers) or a
  constant (``value``);
- ``aggregate: sum`` when several rows add up to one contract row (the
  wages of each member), and ``unit_check`` naming the amount to check for
  unit errors.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from warning.contract import TABLES

DEFAULT_SPECS_DIR = Path(__file__).with_name("specs")
# The C loader is about ten times faster; PyYAML builds without libyaml lack it.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SourceType = Literal[
    "identity", "region", "township", "month", "date", "year", "number", "integer", "code", "flag", "text"
]
SOURCE_TYPES = (
    "identity",
    "region",
    "township",
    "month",
    "date",
    "year",
    "number",
    "integer",
    "code",
    "flag",
    "text",
)
LinkKind = Literal["household", "person", "head"]
ExportRole = Literal["table", "households", "members"]
# Which contract column kinds each source type can fill.
COMPATIBLE_KINDS: dict[str, tuple[str, ...]] = {
    "identity": ("id",),
    "region": ("region",),
    "township": ("text",),
    "month": ("month",),
    "date": ("month",),
    "year": ("year",),
    "number": ("float",),
    "integer": ("int",),
    "code": ("category",),
    "flag": ("bool",),
    "text": ("text", "category"),
}


class SpecError(ValueError):
    """A feed specification file is invalid."""


@dataclass(frozen=True)
class SourceColumn:
    """One column of an export as the department writes it."""

    name: str
    type: SourceType
    format: str | None = None
    codes: dict[str, object] = field(default_factory=dict)
    scale: float = 1.0
    nullable: bool = False
    optional: bool = False
    region_column: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Mapping:
    """How one contract column is filled: from a source column (maybe linked) or a constant."""

    target: str
    source: str | None = None
    link: LinkKind | None = None
    value: object = None


@dataclass(frozen=True)
class ExportSpec:
    """One file type that a department delivers."""

    department: str
    name: str
    title: str
    files: tuple[str, ...]
    role: ExportRole
    target: str | None
    key: tuple[str, ...]
    columns: dict[str, SourceColumn]
    mapping: tuple[Mapping, ...]
    aggregate: Literal["none", "sum"] = "none"
    unit_check: str | None = None
    precedence: int = 100

    @property
    def feed(self) -> str:
        """Return the feed name used in reports and lineage: ``department.export``."""
        return f"{self.department}.{self.name}"

    @property
    def identity_columns(self) -> list[str]:
        return [column.name for column in self.columns.values() if column.type == "identity"]

    @property
    def link(self) -> Mapping | None:
        """Return the mapping that links rows to households, if the export has one."""
        for item in self.mapping:
            if item.link in ("household", "head"):
                return item
        return None

    def matches(self, file_name: str) -> bool:
        return any(fnmatch.fnmatch(file_name, pattern) for pattern in self.files)


def _fail(path: Path, where: str, message: str) -> SpecError:
    return SpecError(f"feed specification {path}, {where}: {message}")


def _source_column(path: Path, where: str, name: str, raw: object) -> SourceColumn:
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise _fail(path, where, f"column {name!r} must be a type name or a mapping")
    unknown = set(raw) - {"type", "format", "codes", "scale", "nullable", "optional", "region", "description"}
    if unknown:
        raise _fail(path, where, f"column {name!r} has unknown fields {sorted(unknown)}")
    kind = raw.get("type")
    if kind not in SOURCE_TYPES:
        raise _fail(
            path, where, f"column {name!r} has type {kind!r}; expected one of {', '.join(SOURCE_TYPES)}"
        )
    if kind in ("month", "date") and not raw.get("format"):
        raise _fail(path, where, f"column {name!r} of type {kind} needs a strptime format, such as '%Y%m'")
    if kind in ("month", "date"):
        others = sorted(set(re.findall(r"%[A-Za-z%]", str(raw["format"]))) - {"%Y", "%m", "%d"})
        if others:
            raise _fail(path, where, f"column {name!r}: format may use only %Y, %m and %d, got {', '.join(others)}")
    if kind in ("code", "flag") and not raw.get("codes"):
        raise _fail(path, where, f"column {name!r} of type {kind} needs codes")
    codes = {str(code): value for code, value in (raw.get("codes") or {}).items()}
    if kind == "flag" and not all(isinstance(value, bool) for value in codes.values()):
        raise _fail(path, where, f"column {name!r}: flag codes must map to true or false")
    scale = float(raw.get("scale", 1.0))
    if scale <= 0:
        raise _fail(path, where, f"column {name!r}: scale must be positive, got {scale}")
    return SourceColumn(
        name=name,
        type=kind,
        format=raw.get("format"),
        codes=codes,
        scale=scale,
        nullable=bool(raw.get("nullable", False)),
        optional=bool(raw.get("optional", False)),
        region_column=raw.get("region"),
        description=str(raw.get("description", "")),
    )


def _mapping(path: Path, where: str, target: str, raw: object, columns: dict[str, SourceColumn]) -> Mapping:
    if isinstance(raw, str):
        raw = {"from": raw}
    if not isinstance(raw, dict) or ("from" in raw) == ("value" in raw):
        raise _fail(path, where, f"mapping of {target!r} needs exactly one of 'from' (a column) or 'value'")
    source = raw.get("from")
    if source is not None and source not in columns:
        raise _fail(
            path, where, f"mapping of {target!r} names column {source!r}, which the export does not declare"
        )
    link = raw.get("link")
    if link not in (None, "household", "person", "head"):
        raise _fail(
            path, where, f"mapping of {target!r}: link must be household, person or head, got {link!r}"
        )
    if link is not None and columns[str(source)].type != "identity":
        raise _fail(
            path, where, f"mapping of {target!r}: link needs an identity column, {source!r} is not one"
        )
    return Mapping(target=target, source=source, link=link, value=raw.get("value"))


def _check_against_contract(path: Path, where: str, spec: ExportSpec) -> None:
    if spec.role == "members":
        targets = {item.target for item in spec.mapping}
        if targets != {"person", "head"}:
            raise _fail(path, where, "a members export maps exactly 'person' and 'head'")
        return
    if spec.target not in TABLES:
        raise _fail(path, where, f"target {spec.target!r} is not a contract table ({', '.join(TABLES)})")
    table = TABLES[spec.target]
    mapped = {item.target for item in spec.mapping}
    missing = [column.name for column in table.columns if column.name not in mapped and not column.nullable]
    unknown = sorted(mapped - set(table.column_names))
    if missing or unknown:
        raise _fail(path, where, f"mapping lacks contract columns {missing} or names unknown ones {unknown}")
    for item in spec.mapping:
        kind = table.column(item.target).kind
        if item.source is not None and kind not in COMPATIBLE_KINDS[spec.columns[item.source].type]:
            source_type = spec.columns[item.source].type
            raise _fail(
                path, where, f"{item.target!r} is a {kind} column; source type {source_type} cannot fill it"
            )
    if spec.unit_check is not None and spec.unit_check not in mapped:
        raise _fail(path, where, f"unit_check names {spec.unit_check!r}, which is not mapped")


def _export(path: Path, department: str, precedence: int, raw: dict[str, object]) -> ExportSpec:
    name = str(raw.get("name", ""))
    where = f"export {name or '(unnamed)'}"
    if not name.isidentifier():
        raise _fail(path, where, "every export needs a name made of letters, digits and underscores")
    raw_columns = raw.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise _fail(path, where, "columns must be a non-empty mapping of column name to type")
    columns = {str(key): _source_column(path, where, str(key), value) for key, value in raw_columns.items()}
    for column in columns.values():
        if column.region_column is not None and columns.get(column.region_column, None) is None:
            raise _fail(
                path,
                where,
                f"column {column.name!r} names region column {column.region_column!r}, which is not declared",
            )
    raw_mapping = raw.get("mapping")
    if not isinstance(raw_mapping, dict) or not raw_mapping:
        raise _fail(path, where, "mapping must be a non-empty mapping of contract column to source")
    key = tuple(str(column) for column in raw.get("key") or ())
    if not key or any(column not in columns for column in key):
        raise _fail(path, where, f"key must list declared columns, got {list(key)}")
    files = raw.get("files")
    files = (files,) if isinstance(files, str) else tuple(files or ())
    role = str(raw.get("role", "table"))
    if role not in ("table", "households", "members"):
        raise _fail(path, where, f"role must be table, households or members, got {role!r}")
    aggregate = str(raw.get("aggregate", "none"))
    if aggregate not in ("none", "sum"):
        raise _fail(path, where, f"aggregate must be none or sum, got {aggregate!r}")
    spec = ExportSpec(
        department=department,
        name=name,
        title=str(raw.get("title", "")),
        files=files or (f"{department}_{name}.*", f"{department}_{name}-*"),
        role=role,  # type: ignore[arg-type]
        target=None if role == "members" else str(raw.get("target")),
        key=key,
        columns=columns,
        mapping=tuple(
            _mapping(path, where, str(target), value, columns) for target, value in raw_mapping.items()
        ),
        aggregate=aggregate,  # type: ignore[arg-type]
        unit_check=raw.get("unit_check"),  # type: ignore[arg-type]
        precedence=precedence,
    )
    _check_against_contract(path, where, spec)
    return spec


def load_department(path: Path) -> list[ExportSpec]:
    """Read one department's YAML file and check it against the contract."""
    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise SpecError(f"feed specification {path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("exports"), list):
        raise SpecError(f"feed specification {path} needs 'department' and a list of 'exports'")
    department = str(raw.get("department", ""))
    if not department.isidentifier():
        raise SpecError(f"feed specification {path}: department must be a name like civil_affairs")
    precedence = int(raw.get("precedence", 100))
    return [_export(path, department, precedence, entry) for entry in raw["exports"]]


def load_specs(folder: Path | None = None) -> list[ExportSpec]:
    """Read every department file (``*.yaml``) of a folder; ``None`` reads the packaged specs.

    Raises ``SpecError`` if two exports share a feed name or if no export
    defines households and members.
    """
    folder = Path(folder) if folder is not None else DEFAULT_SPECS_DIR
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise SpecError(f"no feed specifications (*.yaml) in {folder}")
    specs = [spec for path in paths for spec in load_department(path)]
    names = [spec.feed for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SpecError(f"feed names repeat across {folder}: {repeated}")
    roles = {spec.role for spec in specs}
    if not {"households", "members"} <= roles:
        raise SpecError(f"the specifications in {folder} need one households export and one members export")
    return specs
