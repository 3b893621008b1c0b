"""hearthdb.yml loading: defaults, overrides, and one clear line per error naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from operations.config import ai_database, load_config, parse_config
from operations.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hearthdb.yml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "absent.yml")
    assert cfg.cluster.version == 17
    assert cfg.cluster.name == "main"
    assert cfg.cluster.port == 5432
    assert cfg.cluster.data_checksums is True
    assert cfg.shared_db.name == "hearthminds_db"
    assert cfg.shared_db.owner == "hearthminds"
    assert cfg.ai_names == ["logos", "aletheia"]
    assert [ai_database(cfg, a) for a in cfg.ai_names] == ["logos_db", "aletheia_db"]
    assert [e.name for e in cfg.default_extensions] == ["vector"]


def test_file_overrides_defaults(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            "cluster: {port: 5433}\nai_names: [sophia]\nai_db_suffix: _mem\n"
            "default_extensions: [vector, {name: pg_trgm, version: '1.6'}]\n",
        )
    )
    assert cfg.cluster.port == 5433
    assert cfg.cluster.version == 17  # the rest of `cluster` keeps its defaults
    assert ai_database(cfg, "sophia") == "sophia_mem"
    assert [(e.name, e.version) for e in cfg.default_extensions] == [("vector", None), ("pg_trgm", "1.6")]


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTHDB_CONFIG", str(write(tmp_path, "ai_names: [nous]\n")))
    assert load_config().ai_names == ["nous"]


def test_env_var_naming_a_missing_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTHDB_CONFIG", str(tmp_path / "nope.yml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"cluster": {"port": 80}}, "hearthdb.yml: cluster.port: Input should be greater than or equal to 1024"),
        ({"cluster": {"version": 12}}, "hearthdb.yml: cluster: version 12 is not supported; use one of 15, 16, 17"),
        ({"cluster": {"prot": 5432}}, "hearthdb.yml: cluster.prot: unknown key; did you mean 'port'?"),
        ({"ai_name": ["x"]}, "hearthdb.yml: ai_name: unknown key; did you mean 'ai_names'?"),
        ({"ai_names": ["logos", "logos"]}, "ai_names[1]: 'logos' is listed twice"),
        ({"ai_names": ["Logos"]}, "ai_names[0]: 'Logos' is not a valid name"),
        ({"ai_names": ["x; DROP TABLE y"]}, "ai_names[0]: 'x; DROP TABLE y' is not a valid name"),
        ({"ai_names": ["postgres"]}, "ai_names[0]: 'postgres' is a PostgreSQL system name"),
        ({"ai_names": ["pg_monitor"]}, "ai_names[0]: 'pg_monitor' is a PostgreSQL system name"),
        ({"ai_names": ["user"]}, "ai_names[0]: 'user' is a reserved SQL key word"),
        ({"ai_names": ["a" * 64]}, "is longer than 63 bytes"),
        ({"ai_names": ["hearthminds"]}, "clashes with the shared database or its owner"),
        ({"ai_names": "logos"}, "ai_names: Input should be a valid list"),
        ({"cluster": {"port": "high"}}, "cluster.port: Input should be a valid integer"),
        ({"default_extensions": ["vector", "vector"]}, "default_extensions: 'vector' is listed twice"),
        ({"default_extensions": ["vec tor"]}, "default_extensions[0].name: Value error, 'vec tor'"),
        ({"cluster": {"listen_addresses": ["10.0.0.300"]}}, "'10.0.0.300' is not an IP address"),
    ],
)
def test_bad_input_names_key_and_reason(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    message = str(err.value)
    assert expected.replace("Value error, ", "") in message
    assert "\n" not in message  # one problem, one line


def test_yaml_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hearthdb.yml: not valid YAML"):
        load_config(write(tmp_path, "cluster: [unclosed\n"))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"must be a mapping of keys, got list"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_documented_defaults_are_the_model_defaults() -> None:
    # group_data/defaults.yml documents every key: it must state exactly what the model does.
    from operations.config import DEFAULTS_FILE, HearthConfig

    documented = yaml.safe_load(DEFAULTS_FILE.read_text())
    assert set(documented) == {f.alias or n for n, f in HearthConfig.model_fields.items()}
    assert parse_config(documented) == HearthConfig()
