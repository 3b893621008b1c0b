"""The typed model of `hearthdb.yml` and its loader.

Pure Python (no pyinfra imports): the same model is used by group_data, the deploy and the tests.
Every key, its default and its rule is documented in `group_data/defaults.yml` and the README.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from .errors import ConfigError
from .paths import ROOT

DEFAULTS_FILE = ROOT / "group_data" / "defaults.yml"
CONFIG_ENV = "HEARTHDB_CONFIG"

SUPPORTED_VERSIONS = (15, 16, 17)
# Names PostgreSQL or Debian already use; a managed role or database must not take them.
SYSTEM_NAMES = frozenset({"postgres", "template0", "template1", "public", "information_schema"})
# SQL key words that are reserved in PostgreSQL: legal only when quoted, a trap for every client.
RESERVED_WORDS = frozenset(
    """all analyse analyze and any array as asc asymmetric authorization binary both case cast check
    collate collation column concurrently constraint create cross current_catalog current_date
    current_role current_schema current_time current_timestamp current_user default deferrable desc
    distinct do else end except false fetch for foreign freeze from full grant group having ilike in
    initially inner intersect into is isnull join lateral leading left like limit localtime
    localtimestamp natural not notnull null offset on only or order outer overlaps placing primary
    references returning right select session_user similar some symmetric system_user table tablesample
    then to trailing true union unique user using variadic verbose when where window with""".split()
)
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*(-[a-z0-9_]+)*$")
MAX_NAME = 63  # NAMEDATALEN - 1


def check_name(value: str) -> str:
    """A role or database name hearthdb will create: lower-case ASCII, safe in every client."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty name")
    if len(value.encode()) > MAX_NAME:
        raise ValueError(f"{value!r} is longer than {MAX_NAME} bytes (PostgreSQL would truncate it)")
    if not NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lower-case ASCII letters, digits, '_' "
            "(and '-' between them), starting with a letter or '_'"
        )
    if value in SYSTEM_NAMES or value.startswith("pg_"):
        raise ValueError(f"{value!r} is a PostgreSQL system name; choose another")
    if value in RESERVED_WORDS:
        raise ValueError(f"{value!r} is a reserved SQL key word; choose another")
    return value


Name = Annotated[str, AfterValidator(check_name)]
EXTENSION_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z._-]{0,31}$")


def check_extension(value: str) -> str:
    if not EXTENSION_RE.match(value):
        raise ValueError(f"{value!r} is not a valid extension name")
    return value


ExtName = Annotated[str, AfterValidator(check_extension)]


class Strict(BaseModel):
    """Unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Extension(Strict):
    name: ExtName
    version: Annotated[str, Field(pattern=VERSION_RE.pattern)] | None = None


def _extension_list(value: Any) -> Any:
    # `[vector, {name: pg_trgm, version: "1.6"}]`: a bare string is an extension at its default version.
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class Cluster(Strict):
    version: int = 17
    name: Name = "main"
    port: Annotated[int, Field(ge=1024, le=65535)] = 5432
    listen_addresses: list[str] = Field(default_factory=lambda: ["localhost"])
    locale: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")] = "C.UTF-8"
    encoding: Literal["UTF8", "SQL_ASCII", "LATIN1"] = "UTF8"
    data_checksums: bool = True

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        if self.version not in SUPPORTED_VERSIONS:
            versions = ", ".join(map(str, SUPPORTED_VERSIONS))
            raise ValueError(f"version {self.version} is not supported; use one of {versions}")
        for addr in self.listen_addresses:
            if addr in ("*", "localhost", "::", "0.0.0.0"):
                continue
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise ValueError(f"listen_addresses: {addr!r} is not an IP address, 'localhost' or '*'") from None
        return self


class SharedDatabase(Strict):
    name: Name = "hearthminds_db"
    owner: Name = "hearthminds"


class HearthConfig(Strict):
    cluster: Cluster = Field(default_factory=Cluster)
    shared_db: SharedDatabase = Field(default_factory=SharedDatabase)
    ai_names: list[Name] = Field(default_factory=lambda: ["logos", "aletheia"])
    ai_db_suffix: Annotated[str, Field(pattern=r"^[a-z0-9_]{0,16}$")] = "_db"
    default_extensions: list[Extension] = Field(default_factory=lambda: [Extension(name="vector")])

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict) and "default_extensions" in data:
            data = {**data, "default_extensions": _extension_list(data["default_extensions"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> HearthConfig:
        seen: set[str] = set()
        for i, ai in enumerate(self.ai_names):
            if ai in seen:
                raise ValueError(f"ai_names[{i}]: {ai!r} is listed twice")
            seen.add(ai)
            db = ai_database(self, ai)
            check_name(db)
            if ai == self.shared_db.owner or db == self.shared_db.name or ai == self.shared_db.name:
                raise ValueError(f"ai_names[{i}]: {ai!r} clashes with the shared database or its owner")
        names = [e.name for e in self.default_extensions]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"default_extensions: {sorted(dup)[0]!r} is listed twice")
        return self


def ai_database(cfg: HearthConfig, ai: str) -> str:
    return f"{ai}{cfg.ai_db_suffix}"


# ---------------------------------------------------------------------------------------------- loading


def _suggest(key: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the key at `loc` (for typo suggestions)."""
    model: Any = HearthConfig
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key{_suggest(str(loc[-1]), _model_at(loc))}"
        elif e["type"] in (
            "int_parsing",
            "int_type",
            "bool_parsing",
            "bool_type",
            "list_type",
            "string_type",
            "dict_type",
            "model_type",
        ):
            msg = f"{msg} (got {e.get('input')!r})"
        lines.append(f"{source}: {_loc(loc)}: {msg}")
    return "\n".join(lines)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): must be a mapping of keys, got {type(data).__name__}")
    return data


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or ROOT / "hearthdb.yml")


def parse_config(data: dict[str, Any], source: str = "hearthdb.yml") -> HearthConfig:
    try:
        return HearthConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_errors(e, source)) from None


def load_config(path: Path | None = None) -> HearthConfig:
    """Defaults (group_data/defaults.yml) overlaid by the user's hearthdb.yml, validated."""
    path = path or config_path()
    data = _read_yaml(DEFAULTS_FILE)
    if path.exists():
        data.update(_read_yaml(path))
    elif os.environ.get(CONFIG_ENV):
        raise ConfigError(f"{path}: {CONFIG_ENV} names a file that does not exist")
    return parse_config(data, path.name)
