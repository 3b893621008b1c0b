"""Role passwords on the controller: from the environment, or generated once and kept in a file only
its owner can read. They leave the controller only as SCRAM verifiers, on psql's stdin."""

from __future__ import annotations

import os
import re
import secrets
import string
import tempfile
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pyinfra.api import HiddenValue

from .config import HearthConfig, declared_role_names, system_roles
from .errors import ConfigError
from .paths import ROOT

SECRETS_ENV = "HEARTHDB_SECRETS"
PRINTABLE = set(string.printable) - set(string.whitespace)


def env_name(role: str) -> str:
    """HEARTHDB_PASSWORD_<ROLE>, with '-' as '_': e.g. HEARTHDB_PASSWORD_HEARTHMINDS_SERVICE."""
    return "HEARTHDB_PASSWORD_" + role.upper().replace("-", "_")


def secrets_path(cfg: HearthConfig) -> Path:
    path = Path(os.environ.get(SECRETS_ENV) or cfg.secrets_file).expanduser()
    return path if path.is_absolute() else ROOT / path


def password_roles(cfg: HearthConfig) -> list[str]:
    """Present roles that have a password: login roles unless `password: false`."""
    out = []
    system = system_roles(cfg)
    for name in declared_role_names(cfg):
        role = cfg.roles.get(name) or system.get(name)
        login = role.login if role else True
        wanted = role.password if role and role.password is not None else login
        if wanted and (role is None or role.state == "present"):
            out.append(name)
    return out


def _check(role: str, password: str, cfg: HearthConfig, source: str) -> None:
    where = f"roles.{role}.password ({source})"
    if password == role or password.lower() == role.lower():
        raise ConfigError(f"{where}: equal to the role name; choose another")
    if len(password) < cfg.password_min_length:
        raise ConfigError(
            f"{where}: {len(password)} characters, fewer than password_min_length ({cfg.password_min_length})"
        )
    if not set(password) <= PRINTABLE:
        raise ConfigError(f"{where}: only printable ASCII without spaces is accepted")


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path}: mode {mode:o} lets others read it; chmod 600 {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: must map role names to password strings")
    return data


def _write(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secrets-")  # created 0600
    with os.fdopen(fd, "w") as f:
        f.write("# hearthdb role passwords: generated once, keep private (mode 600), never commit.\n")
        yaml.safe_dump(data, f, default_flow_style=False)
    os.replace(tmp, path)


def resolve_passwords(cfg: HearthConfig) -> dict[str, HiddenValue]:
    """Every password role's password, checked; missing ones generated (if allowed) and stored."""
    path = secrets_path(cfg)
    stored = _read(path)
    out: dict[str, HiddenValue] = {}
    new = False
    for role in password_roles(cfg):
        env = os.environ.get(env_name(role))
        if env is not None:
            _check(role, env, cfg, env_name(role))
            out[role] = HiddenValue(env)
            continue
        if role not in stored:
            if not cfg.generate_passwords:
                raise ConfigError(
                    f"roles.{role}.password: none given; set {env_name(role)}, add it to {path}, "
                    "or set generate_passwords: true"
                )
            stored[role] = secrets.token_urlsafe(24)
            new = True
        _check(role, stored[role], cfg, str(path))
        out[role] = HiddenValue(stored[role])
    if new:
        _write(path, stored)
    return out


def complete_passwords(cfg: HearthConfig, passwords: dict[str, HiddenValue] | None) -> dict[str, HiddenValue]:
    """The passwords a deploy function was given, with every missing one resolved as group_data/all.py
    resolves them (environment, then the secrets file; generated there if allowed). A role for which
    none can be had is a ConfigError naming it: a missing password never reads as "no password"."""
    given = dict(passwords or {})
    if all(role in given for role in password_roles(cfg)):
        return given
    return {**resolve_passwords(cfg), **given}


# The repository passphrase sits in the secrets file under a key no role can have ('.' is not allowed in
# a role name); HEARTHDB_BACKUP_CIPHER_PASS overrides it.
CIPHER_KEY = "backup.cipher_pass"
CIPHER_ENV = "HEARTHDB_BACKUP_CIPHER_PASS"


def backup_passphrase(cfg: HearthConfig) -> HiddenValue | None:
    """The pgBackRest repository passphrase (aes-256-cbc), generated once; None without encryption."""
    if not (cfg.backup.enabled and cfg.backup.encryption):
        return None
    env = os.environ.get(CIPHER_ENV)
    if env is not None:
        if len(env) < 32 or not set(env) <= PRINTABLE:
            raise ConfigError(f"{CIPHER_ENV}: at least 32 printable characters without spaces")
        return HiddenValue(env)
    path = secrets_path(cfg)
    stored = _read(path)
    if CIPHER_KEY not in stored:
        if not cfg.generate_passwords:
            raise ConfigError(f"backup.encryption: no passphrase; set {CIPHER_ENV} or generate_passwords: true")
        stored[CIPHER_KEY] = secrets.token_urlsafe(48)
        _write(path, stored)
    return HiddenValue(stored[CIPHER_KEY])


def backup_key(cfg: HearthConfig, host_name: str) -> tuple[HiddenValue, str]:
    """A database host's SSH key for its SFTP repository (ed25519, OpenSSH format), generated once beside
    the secrets file (`backup-keys/<host>`, mode 600): the private key, and the public key line."""
    folder = secrets_path(cfg).parent / "backup-keys"
    path = folder / re.sub(r"[^A-Za-z0-9_.-]", "_", host_name)
    if not path.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".key-")  # created 0600
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        os.replace(tmp, path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path}: mode {mode:o} lets others read it; chmod 600 {path}")
    private = path.read_bytes()
    key = serialization.load_ssh_private_key(private, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return HiddenValue(private.decode()), f"{public.decode()} hearthdb-backup@{host_name}"
