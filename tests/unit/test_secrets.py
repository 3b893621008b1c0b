"""Passwords: from the environment or generated once into a 0600 file; weak ones refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pyinfra.api import HiddenValue

from operations.config import parse_config
from operations.errors import ConfigError
from operations.secrets import complete_passwords, env_name, resolve_passwords


@pytest.fixture
def secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "s" / "secrets.yml"
    monkeypatch.setenv("HEARTHDB_SECRETS", str(path))
    for key in list(os.environ):
        if key.startswith("HEARTHDB_PASSWORD_"):
            monkeypatch.delenv(key)
    return path


def test_generated_once_stored_0600_and_stable(secrets_file: Path) -> None:
    cfg = parse_config({})
    first = resolve_passwords(cfg)
    assert set(first) == {"hearthminds", "logos", "aletheia"}
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    assert oct(secrets_file.parent.stat().st_mode & 0o777) == "0o700"
    stored = yaml.safe_load(secrets_file.read_text())
    assert {k: v.unmask() for k, v in first.items()} == stored
    assert all(len(v) >= 32 for v in stored.values())
    again = resolve_passwords(cfg)
    assert {k: v.unmask() for k, v in again.items()} == stored
    assert str(first["logos"]) == "*MASKED*"


def test_environment_wins(secrets_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name("logos"), "from-the-environment-1")
    assert resolve_passwords(parse_config({}))["logos"].unmask() == "from-the-environment-1"
    assert env_name("hearthminds-service") == "HEARTHDB_PASSWORD_HEARTHMINDS_SERVICE"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("logos", "equal to the role name"),
        ("short-one", "fewer than password_min_length"),
        ("has a space in it ok", "printable ASCII"),
    ],
)
def test_weak_passwords_refused(
    secrets_file: Path, monkeypatch: pytest.MonkeyPatch, password: str, reason: str
) -> None:
    monkeypatch.setenv(env_name("logos"), password)
    with pytest.raises(ConfigError, match=rf"roles.logos.password \(HEARTHDB_PASSWORD_LOGOS\): .*{reason}"):
        resolve_passwords(parse_config({}))


def test_absent_with_generation_off_is_an_error(secrets_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"hearthminds\.password: none given; set HEARTHDB_PASSWORD_HEARTHMINDS"):
        resolve_passwords(parse_config({"generate_passwords": False}))


def test_readable_secrets_file_refused(secrets_file: Path) -> None:
    resolve_passwords(parse_config({}))
    secrets_file.chmod(0o644)
    with pytest.raises(ConfigError, match="lets others read it"):
        resolve_passwords(parse_config({}))


def test_nologin_role_gets_no_password(secrets_file: Path) -> None:
    cfg = parse_config({"roles": {"readers": {"login": False}}})
    assert "readers" not in resolve_passwords(cfg)


def test_deploy_functions_resolve_passwords_not_passed(secrets_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """converge(cfg) with no passwords (a user's own deploy) gets them as group_data/all.py would."""
    cfg = parse_config({})
    stored = resolve_passwords(cfg)
    monkeypatch.setenv("HEARTHDB_PASSWORD_LOGOS", "from-the-environment-2")
    got = complete_passwords(cfg, None)
    assert got["logos"].unmask() == "from-the-environment-2"
    assert got["aletheia"].unmask() == stored["aletheia"].unmask()
    given = {"aletheia": HiddenValue("passed-by-the-caller-1")}
    assert complete_passwords(cfg, given)["aletheia"].unmask() == "passed-by-the-caller-1"


def test_no_password_source_is_an_error_naming_the_role(secrets_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"roles\.hearthminds\.password: none given"):
        complete_passwords(parse_config({"generate_passwords": False}), {})
