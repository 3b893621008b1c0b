"""What users build on: the deploy functions called from a project of their own (examples/own-deploy),
and PostgreSQL's own backup tools used by a database's owner on a database hearthdb migrated."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import api

from .conftest import PYINFRA, ROOT, Run, changed_ops, psql_json, secrets, ssh

EXAMPLE = ROOT / "examples" / "own-deploy"
VERIFIERS = "SELECT json_object_agg(rolname, rolpassword) FROM pg_authid WHERE rolname !~ '^pg_'"


@pytest.fixture(scope="module")
def host(lab_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    return api.reset(lab_hosts[0]["name"], layer="postgresql")


def own_deploy(
    host: str, secrets_file: Path, tmp: Path, *args: str, project: Path = EXAMPLE
) -> subprocess.CompletedProcess:
    """`pyinfra inventory.py deploy.py` run from the example project's folder, as its user would: its own
    inventory, group_data and hearthdb.yml; only where the hosts and the secrets are comes from outside."""
    env = api.deploy_env(tmp, api.inventory([host]), {}, secrets_file)
    env.pop("HEARTHDB_CONFIG")  # the project's own hearthdb.yml, loaded by its group_data/all.py
    return subprocess.run(
        [PYINFRA, "inventory.py", "deploy.py", *args], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


def test_own_deploy_keeps_every_password_and_validates(
    host: dict[str, Any], deploy: Callable[..., Run], tmp_path: Path
) -> None:
    name = host["name"]
    declared = yaml.safe_load((EXAMPLE / "hearthdb.yml").read_text())
    deploy([name], declared, "-y")  # converged by hearthdb's own entry point first, with the same secrets
    before = psql_json(name, VERIFIERS)
    assert set(before) >= {"hearthminds", "logos", "aletheia", "reporting"}

    dry = own_deploy(name, deploy.secrets_file, tmp_path, "--dry")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "PASSWORD" not in dry.stderr  # nothing to change in any role, least of all its password
    run = own_deploy(name, deploy.secrets_file, tmp_path, "-y")
    assert run.returncode == 0, run.stderr[-4000:]
    assert psql_json(name, VERIFIERS) == before
    m = re.search(r"validation run \w+: (\d+)/(\d+) checks passed", run.stderr)
    assert m and m.group(1) == m.group(2), run.stderr[-3000:]
    assert "managed by hearthdb" in ssh(name, "cat /etc/motd").stdout  # the project's own operation ran
    again = own_deploy(name, deploy.secrets_file, tmp_path, "-y", "--json")
    assert again.returncode == 0
    assert changed_ops(json.loads(again.stdout)) == []


def test_missing_password_source_is_an_error_naming_the_role(
    host: dict[str, Any], deploy: Callable[..., Run], tmp_path: Path
) -> None:
    """The same project with generated passwords off and no password anywhere: its deploy stops before
    any command runs on the host, naming the role; a missing password never reads as "no password"."""
    name = host["name"]
    before = psql_json(name, VERIFIERS)
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    with (project / "hearthdb.yml").open("a") as f:
        f.write("generate_passwords: false\n")
    run = own_deploy(name, tmp_path / "no-secrets.yml", tmp_path, "-y", "-vv", project=project)
    assert run.returncode != 0
    assert "roles.hearthminds.password: none given" in run.stderr
    assert ">>> " not in run.stderr  # -vv shows every remote command: none ran
    assert psql_json(name, VERIFIERS) == before


def test_owner_dumps_and_restores_its_database(host: dict[str, Any], deploy: Callable[..., Run]) -> None:
    """pg_dump and pg_restore run as the database's owner (no superuser), ledger included; the restored
    database is recognised: the next deploy applies no migration to it and validation passes."""
    name = host["name"]
    declared = yaml.safe_load((EXAMPLE / "hearthdb.yml").read_text())
    # The database to restore into is declared first without bundles (extensions are the superuser's
    # to create), then with the bundle its dump carries.
    empty = {**declared, "databases": {"logos_copy": {"owner": "logos", "bundles": []}}}
    deploy([name], empty, "-y")
    pw = secrets(deploy)["logos"]
    rows = "INSERT INTO bonds (counterpart, kind, strength) VALUES ('aletheia', 'ai', 0.5), ('ada', 'user', 0.9)"
    ssh(name, "sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -d logos_db", stdin=f"SET ROLE logos; {rows};")
    as_owner = (
        't=$(mktemp); trap \'rm -f "$t"\' EXIT; cat > "$t"; export PGPASSFILE="$t" PGHOST=127.0.0.1 PGUSER=logos; '
        "pg_dump -Fc -f /tmp/logos_db.dump logos_db && pg_restore --exit-on-error -d logos_copy /tmp/logos_db.dump"
    )
    out = ssh(name, f"sudo -u nobody sh -c {shlex.quote(as_owner)}", stdin=f"*:*:*:logos:{pw}\n", check=False)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    ledger = (
        "SELECT json_agg(json_build_array(bundle, version, sha256) ORDER BY bundle, version) "
        "FROM hearthdb.schema_migrations"
    )
    assert psql_json(name, ledger, database="logos_copy") == psql_json(name, ledger, database="logos_db")
    assert psql_json(name, "SELECT to_json(count(*)) FROM bonds", database="logos_copy") == 2

    restored = {**declared, "databases": {"logos_copy": {"owner": "logos", "bundles": ["pp"]}}}
    dry = deploy([name], restored, "--dry", "--json")
    assert "schema migrations" not in changed_ops(dry), dry.stderr[-3000:]
    run = deploy([name], restored, "-y", "--json")
    assert changed_ops(run.json) == []
    check = deploy([name], restored, "-y", entry="validate.py")
    m = re.search(r"validation run \w+: (\d+)/(\d+) checks passed", check.stderr)
    assert m and m.group(1) == m.group(2), check.stderr[-3000:]
    assert "schema:logos_copy" not in check.stderr  # listed only when it fails
