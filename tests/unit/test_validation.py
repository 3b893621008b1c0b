"""Validation checks from canned facts, and the rotating sample of end-to-end login probes."""

from __future__ import annotations

from pyinfra.api import HiddenValue

from operations.config import parse_config
from operations.desired import RoleSpec, desired_databases, desired_roles
from operations.validation import (
    LOGIN_PROBES,
    Check,
    login_checks,
    login_pairs,
    login_script,
    state_checks,
    summary,
    untried,
)


def test_login_pairs_own_shared_and_refused_next() -> None:
    roles = {a: RoleSpec(a, password=HiddenValue("x" * 20)) for a in ("logos", "aletheia")}
    pairs = login_pairs(roles, {"logos": "logos_db", "aletheia": "aletheia_db"}, "hearthminds_db", seed=0)
    assert pairs == [
        ("logos", "logos_db", True),
        ("logos", "hearthminds_db", True),
        ("logos", "aletheia_db", False),
        ("aletheia", "aletheia_db", True),
        ("aletheia", "hearthminds_db", True),
        ("aletheia", "logos_db", False),
    ]


def test_login_probes_are_bounded_and_rotate_over_runs() -> None:
    names = [f"ai{i:03d}" for i in range(200)]
    roles = {a: RoleSpec(a, password=HiddenValue("x" * 20)) for a in names}
    dbs = {a: f"{a}_db" for a in names}
    covered: set[str] = set()
    for seed in range(0, 200, LOGIN_PROBES):
        pairs = login_pairs(roles, dbs, "hearthminds_db", seed)
        assert len({r for r, _, _ in pairs}) == LOGIN_PROBES
        covered |= {r for r, _, _ in pairs}
    assert covered == set(names)


def test_state_checks_reuse_the_planners() -> None:
    cfg = parse_config({"ai_names": ["logos"]})
    roles, dbs = desired_roles(cfg), desired_databases(cfg)
    checks = state_checks(["postgresql-17"], {}, False, roles, dbs, {}, {"hm": [], "pp": []}, {})
    by_name = {c.name: c for c in checks}
    assert not by_name["packages"].passed and by_name["packages"].detail == "missing: postgresql-17"
    assert not by_name["cluster_running"].passed
    assert not by_name["role:logos"].passed and "CREATE ROLE" in by_name["role:logos"].detail
    assert not by_name["database:logos_db"].passed


def test_login_results_and_summary() -> None:
    pairs = [("logos", "logos_db", True), ("logos", "aletheia_db", False)]
    out = ["logos logos_db ok", 'logos aletheia_db fail FATAL: permission denied for database "aletheia_db"']
    checks = login_checks(pairs, out)
    assert [c.passed for c in checks] == [True, True]
    connected = login_checks(pairs, ["logos logos_db ok", "logos aletheia_db ok"])
    assert connected[1] == Check("refused", "logos@aletheia_db", False, "connected")
    assert summary(connected) == [
        "ok   login            1/1",
        "FAIL refused          0/1",
        "FAIL refused:logos@aletheia_db: connected",
    ]


def test_a_failed_login_leaves_the_rest_of_the_chain_to_be_asked_one_by_one() -> None:
    pairs = [("logos", "logos_db", True), ("logos", "hearthminds_db", True), ("aletheia", "aletheia_db", True)]
    # the chain stopped at its second login (psql ends a script at a failed \connect)
    output = ["logos logos_db ok", "logos hearthminds_db fail FATAL:  password authentication failed"]
    rest = untried(pairs, output)
    assert rest == [("aletheia", "aletheia_db", True)]
    script = login_script(5432, rest, chain=False)
    assert "\\connect" not in script and "aletheia:aletheia_db" in script
    checks = login_checks(pairs, [*output, "aletheia aletheia_db ok"])
    assert [(c.name, c.passed) for c in checks] == [
        ("login:logos@logos_db", True),
        ("login:logos@hearthminds_db", False),
        ("login:aletheia@aletheia_db", True),
    ]
