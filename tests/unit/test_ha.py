"""The pure part of high availability and pooling (operations/ha.py): the `ha` and `pooler` models, the
difference of Patroni's dynamic configuration, the parameters Patroni owns, the access functions
planned in `postgres`, the replicas' checks and the files etcd, Patroni, HAProxy and PgBouncer read;
and the cross-key rules of hearthdb.yml that involve them."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from operations.config import parse_config, stanza_of
from operations.desired import desired_roles
from operations.errors import ConfigError
from operations.ha import (
    AUTH_BODY,
    AUTH_CONFIG,
    IDENT_MAP,
    PATRONI_LOCAL,
    PATRONI_OWNED,
    REWIND_FUNCTIONS,
    Ha,
    Pooler,
    auth_function_statements,
    dcs_config,
    dcs_patch,
    etcd_environment,
    haproxy_config,
    hba_lines,
    ident_content,
    leader_condition,
    member_address,
    patroni_config,
    pgbouncer_ini,
    plan_access_functions,
    replica_checks,
    split_settings,
)
from operations.pgbackrest import timer_units
from operations.secrets import password_roles
from operations.target import Cluster

TARGET = Cluster(17, "main", 5432)
MEMBERS = ["db1", "db2", "db3"]
ADDRESSES = {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"}
PASSWORD = "Zq8-replication-secret-4u"
LOOKUP = "pgbouncer.get_auth(text)"


def ha(**kw: Any) -> Ha:
    return Ha(**{"enabled": True, "members": MEMBERS, **kw})


def env_dict(text: str) -> dict[str, str]:
    """/etc/default/etcd as KEY -> value (quotes removed), comments skipped."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert value.startswith('"') and value.endswith('"'), line
            out[key] = value[1:-1]
    return out


# ----------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("count", [1, 2, 4])
def test_an_etcd_count_that_is_not_odd_and_at_least_three_is_refused(count: int) -> None:
    names = [f"e{i}" for i in range(count)]
    with pytest.raises(ValidationError, match=r"odd count of at least three") as err:
        ha(etcd=names)
    assert f"etcd: {count} member" in str(err.value)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_members_standing_in_for_etcd_are_counted_too(count: int) -> None:
    with pytest.raises(ValidationError, match=r"odd count of at least three"):
        Ha(enabled=True, members=[f"m{i}" for i in range(count)])


@pytest.mark.parametrize("count", [3, 5])
def test_three_or_five_etcd_members_are_accepted(count: int) -> None:
    names = [f"e{i}" for i in range(count)]
    assert ha(etcd=names).etcd_members == names
    assert Ha(enabled=True, members=names).etcd_members == names  # null etcd: the members


def test_etcd_members_may_be_other_hosts_than_the_members() -> None:
    h = Ha(enabled=True, members=["db1", "db2"], etcd=["db1", "db2", "witness"])
    assert h.etcd_members == ["db1", "db2", "witness"]


@pytest.mark.parametrize(("ttl", "loop_wait", "retry_timeout"), [(20, 12, 5), (20, 15, 3), (25, 1, 13)])
def test_ttl_shorter_than_loop_wait_and_two_retries_is_refused(ttl: int, loop_wait: int, retry_timeout: int) -> None:
    with pytest.raises(ValidationError, match=r"ttl: loop_wait \+ 2 \* retry_timeout = \d+ exceeds ttl"):
        ha(ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout)


@pytest.mark.parametrize(("key", "value", "floor"), [("ttl", 19, 20), ("retry_timeout", 2, 3), ("loop_wait", 0, 1)])
def test_values_below_patronis_floor_are_refused(key: str, value: int, floor: int) -> None:
    # Patroni would raise them to its minimum without a word: the lease would not be what was declared
    with pytest.raises(ValidationError, match=rf"{key}\n  Input should be greater than or equal to {floor}"):
        ha(**{key: value})
    assert getattr(ha(**{key: floor}), key) == floor


def test_ttl_equal_to_loop_wait_and_two_retries_is_accepted() -> None:
    h = ha(ttl=21, loop_wait=3, retry_timeout=9)
    assert (h.ttl, h.loop_wait, h.retry_timeout) == (21, 3, 9)


def test_a_member_listed_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"members: 'db2' is listed twice"):
        Ha(enabled=True, members=["db1", "db2", "db2"])


def test_an_etcd_member_listed_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"etcd: 'e1' is listed twice"):
        ha(etcd=["e1", "e2", "e1"])


def test_an_address_for_an_unknown_host_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"addresses: 'db9' is neither a member nor an etcd member"):
        ha(addresses={"db1": "10.0.0.1", "db9": "10.0.0.9"})


def test_addresses_of_members_and_etcd_members_are_accepted() -> None:
    h = Ha(
        enabled=True,
        members=["db1", "db2"],
        etcd=["db1", "db2", "witness"],
        addresses={"db1": "10.0.0.1", "witness": "10.0.0.9"},
    )
    assert h.addresses == {"db1": "10.0.0.1", "witness": "10.0.0.9"}


def test_enabled_needs_members() -> None:
    with pytest.raises(ValidationError, match=r"members: name the inventory hosts"):
        Ha(enabled=True)


def test_disabled_ha_accepts_empty_members_and_skips_the_rules() -> None:
    assert Ha().members == []
    assert Ha().enabled is False
    assert Ha(members=["a", "a"], etcd=["x", "y"]).enabled is False  # nothing is checked while off


def test_endpoint_ports_must_differ_from_rest_and_etcd() -> None:
    with pytest.raises(ValidationError, match=r"endpoint: its ports must differ"):
        ha(rest_port=5000)
    with pytest.raises(ValidationError, match=r"endpoint: its ports must differ"):
        ha(endpoint={"read_only_port": 2379})
    assert ha(rest_port=5000, endpoint={"enabled": False}).rest_port == 5000


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"extra"):
        Ha(enabled=True, members=MEMBERS, tll=15)
    with pytest.raises(ValidationError, match=r"extra"):
        Pooler(pool_size=5)


def test_pooler_min_pool_size_above_default_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"min_pool_size: exceeds default_pool_size"):
        Pooler(enabled=True, default_pool_size=5, min_pool_size=6)
    assert Pooler(enabled=True, default_pool_size=5, min_pool_size=5).min_pool_size == 5


# ------------------------------------------------------------------------------------------ dcs_patch


def test_dcs_patch_is_empty_when_have_equals_desired() -> None:
    desired = dcs_config(ha(), {"max_connections": 100, "hot_standby": True, "wal_level": "replica"})
    assert dcs_patch(desired, copy.deepcopy(desired)) == {}


def test_dcs_patch_compares_numbers_given_as_text() -> None:
    desired = {"ttl": 15, "postgresql": {"parameters": {"max_connections": 100, "wal_keep_size": "1GB"}}}
    have = {"ttl": "15", "postgresql": {"parameters": {"max_connections": "100", "wal_keep_size": "1GB"}}}
    assert dcs_patch(desired, have) == {}
    assert dcs_patch({"max_connections": "100"}, {"max_connections": 100}) == {}


def test_dcs_patch_compares_booleans_as_booleans() -> None:
    desired = {"synchronous_mode": True, "failsafe_mode": False, "postgresql": {"use_slots": True}}
    assert (
        dcs_patch(desired, {"synchronous_mode": True, "failsafe_mode": False, "postgresql": {"use_slots": True}}) == {}
    )
    assert dcs_patch(
        desired, {"synchronous_mode": False, "failsafe_mode": False, "postgresql": {"use_slots": True}}
    ) == {"synchronous_mode": True}
    # "True" (text) is not the boolean: Patroni would not read it as one
    assert dcs_patch({"synchronous_mode": True}, {"synchronous_mode": "True"}) == {"synchronous_mode": True}


def test_dcs_patch_holds_only_the_differing_nested_keys() -> None:
    desired = {
        "ttl": 15,
        "loop_wait": 3,
        "postgresql": {"use_pg_rewind": True, "parameters": {"max_connections": 200, "wal_level": "replica"}},
    }
    have = {
        "ttl": 15,
        "loop_wait": 10,
        "postgresql": {"use_pg_rewind": True, "parameters": {"max_connections": 100, "wal_level": "replica"}},
    }
    assert dcs_patch(desired, have) == {"loop_wait": 3, "postgresql": {"parameters": {"max_connections": 200}}}


def test_dcs_patch_adds_what_have_lacks() -> None:
    desired = {"ttl": 15, "postgresql": {"parameters": {"max_wal_senders": 10}}}
    assert dcs_patch(desired, None) == desired
    assert dcs_patch(desired, {}) == desired
    assert dcs_patch(desired, {"ttl": 15, "postgresql": "odd"}) == {
        "postgresql": {"parameters": {"max_wal_senders": 10}}
    }


def test_dcs_patch_never_removes_a_parameter_no_longer_declared() -> None:
    desired = {"postgresql": {"parameters": {"max_connections": 100}}}
    have = {"postgresql": {"parameters": {"max_connections": 100, "max_locks_per_transaction": 128}}, "extra": 1}
    patch = dcs_patch(desired, have)
    assert patch == {}
    patch = dcs_patch({"postgresql": {"parameters": {"max_connections": 150}}}, have)
    assert patch == {"postgresql": {"parameters": {"max_connections": 150}}}  # no null for the other one


def merge(have: Any, patch: dict[str, Any]) -> dict[str, Any]:
    """What Patroni does with a PATCH /config body: applied recursively onto what it holds."""
    out = copy.deepcopy(have) if isinstance(have, dict) else {}
    for key, value in patch.items():
        out[key] = merge(out.get(key), value) if isinstance(value, dict) else value
    return out


KEYS = st.sampled_from(["ttl", "loop_wait", "postgresql", "parameters", "max_connections", "wal_level", "a", "b"])
SCALARS = st.one_of(
    st.integers(min_value=-5, max_value=300),
    st.booleans(),
    st.sampled_from(["on", "off", "100", "replica", "1GB", "", "True"]),
    st.integers(min_value=-5, max_value=300).map(str),
)
TREES = st.recursive(SCALARS, lambda children: st.dictionaries(KEYS, children, max_size=4), max_leaves=12)
DICTS = st.dictionaries(KEYS, TREES, max_size=5)


@given(desired=DICTS, have=DICTS)
def test_applying_the_patch_converges(desired: dict[str, Any], have: dict[str, Any]) -> None:
    patch = dcs_patch(desired, have)
    assert dcs_patch(desired, merge(have, patch)) == {}


@given(desired=DICTS, have=DICTS)
def test_the_patch_holds_only_declared_keys(desired: dict[str, Any], have: dict[str, Any]) -> None:
    def within(patch: dict[str, Any], declared: dict[str, Any]) -> bool:
        return all(
            k in declared and (within(v, declared[k]) if isinstance(v, dict) else v == declared[k])
            for k, v in patch.items()
        )

    assert within(dcs_patch(desired, have), desired)


@given(desired=DICTS)
def test_the_patch_from_nothing_converges_in_one_step(desired: dict[str, Any]) -> None:
    assert dcs_patch(desired, merge({}, dcs_patch(desired, {}))) == {}
    assert dcs_patch(desired, copy.deepcopy(desired)) == {}


def test_dcs_config_gives_patroni_on_and_off_for_booleans() -> None:
    params = dcs_config(ha(), {"hot_standby": True, "wal_log_hints": False, "max_connections": 100})
    assert params["postgresql"]["parameters"] == {"hot_standby": "on", "max_connections": 100, "wal_log_hints": "off"}


# -------------------------------------------------------------------------------------- split_settings


def test_split_settings_sends_owned_to_patroni_and_drops_local() -> None:
    settings = {
        "max_connections": 100,
        "wal_level": "replica",
        "hot_standby": True,
        "listen_addresses": "*",
        "port": 5432,
        "cluster_name": "17/main",
        "work_mem": "64MB",
        "shared_buffers": "1GB",
    }
    local, dcs = split_settings(settings)
    assert local == {"work_mem": "64MB", "shared_buffers": "1GB"}
    assert dcs == {"max_connections": 100, "wal_level": "replica", "hot_standby": True}


def test_split_settings_covers_every_owned_and_local_name() -> None:
    settings = {name: 1 for name in (*PATRONI_OWNED, *PATRONI_LOCAL)} | {"random_page_cost": 1.1}
    local, dcs = split_settings(settings)
    assert set(dcs) == set(PATRONI_OWNED)
    assert local == {"random_page_cost": 1.1}
    assert not set(PATRONI_LOCAL) & (set(local) | set(dcs))


# ----------------------------------------------------------------------------- plan_access_functions


def matching_reading(replication_user: str = "replicator", auth_user: str = "pgbouncer_auth") -> dict[str, Any]:
    reading: dict[str, Any] = {
        sig: {"acl": ["postgres=X/postgres", f"{replication_user}=X/postgres"]} for sig in REWIND_FUNCTIONS
    }
    reading[LOOKUP] = {
        "src": AUTH_BODY,
        "secdef": True,
        "config": list(AUTH_CONFIG),
        "acl": ["postgres=X/postgres", f"{auth_user}=X/postgres"],
        "schema_acl": ["postgres=UC/postgres", f"{auth_user}=U/postgres"],
    }
    return reading


def test_with_no_reading_everything_is_planned_in_postgres() -> None:
    pooler = Pooler(enabled=True)
    plan = plan_access_functions(ha(), pooler, None)
    assert plan[0].sql == '\\connect "postgres"'
    grants = plan[1:5]
    for sig, grant in zip(REWIND_FUNCTIONS, grants, strict=True):
        name, args = sig.split("(")
        assert grant.sql == f'GRANT EXECUTE ON FUNCTION "pg_catalog"."{name}"({args} TO "replicator"'
    assert [s.sql for s in plan[5:]] == [s.sql for s in auth_function_statements(pooler)]
    assert plan_access_functions(ha(), pooler, {}) == plan


def test_a_matching_reading_plans_nothing() -> None:
    assert plan_access_functions(ha(), Pooler(enabled=True), matching_reading()) == []


def test_a_quoted_grantee_in_the_acl_counts() -> None:
    reading = matching_reading()
    reading[REWIND_FUNCTIONS[0]]["acl"] = ['"replicator"=X/postgres']
    assert plan_access_functions(ha(), Pooler(enabled=True), reading) == []


def test_only_the_missing_rewind_grant_is_planned() -> None:
    reading = matching_reading()
    reading[REWIND_FUNCTIONS[2]]["acl"] = ["postgres=X/postgres"]
    plan = plan_access_functions(ha(), Pooler(enabled=True), reading)
    assert [s.sql for s in plan] == [
        '\\connect "postgres"',
        'GRANT EXECUTE ON FUNCTION "pg_catalog"."pg_read_binary_file"(text) TO "replicator"',
    ]


def test_public_holding_execute_on_the_lookup_replans_it() -> None:
    reading = matching_reading()
    reading[LOOKUP]["acl"] = ["=X/postgres", "postgres=X/postgres", "pgbouncer_auth=X/postgres"]
    plan = plan_access_functions(ha(), Pooler(enabled=True), reading)
    assert [s.sql for s in plan] == ['\\connect "postgres"', *(s.sql for s in auth_function_statements(Pooler()))]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("src", AUTH_BODY.replace("NOT a.rolsuper AND ", "")),
        ("secdef", False),
        ("config", None),
        ("config", ["search_path=public"]),
        ("acl", ["postgres=X/postgres"]),
        ("acl", ["postgres=X/postgres", "pgbouncer_auth=X/postgres", "mallory=X/postgres"]),
        ("schema_acl", ["postgres=UC/postgres"]),
        ("schema_acl", ["=U/postgres", "postgres=UC/postgres", "pgbouncer_auth=U/postgres"]),
    ],
)
def test_a_lookup_that_differs_is_replanned(key: str, value: Any) -> None:
    reading = matching_reading()
    reading[LOOKUP][key] = value
    plan = plan_access_functions(ha(), Pooler(enabled=True), reading)
    assert [s.sql for s in plan[1:]] == [s.sql for s in auth_function_statements(Pooler())]


def test_a_missing_lookup_is_planned_for_the_pooler_alone() -> None:
    reading = matching_reading()
    del reading[LOOKUP]
    plan = plan_access_functions(None, Pooler(enabled=True), reading)
    assert [s.sql for s in plan] == ['\\connect "postgres"', *(s.sql for s in auth_function_statements(Pooler()))]


def test_nothing_is_planned_with_ha_and_pooler_off() -> None:
    assert plan_access_functions(Ha(), Pooler(), None) == []
    assert plan_access_functions(None, None, None) == []


def test_no_rewind_grants_without_pg_rewind() -> None:
    assert plan_access_functions(ha(use_pg_rewind=False), Pooler(), None) == []


def test_another_replication_user_is_granted() -> None:
    plan = plan_access_functions(ha(replication_user="streamer"), None, matching_reading())
    assert len(plan) == 5
    assert all(s.sql.endswith(' TO "streamer"') for s in plan[1:])
    assert plan_access_functions(ha(replication_user="streamer"), None, matching_reading("streamer")) == []


# -------------------------------------------------------------------------------- the lookup function


def test_the_lookup_function_is_a_pinned_security_definer() -> None:
    statements = [s.sql for s in auth_function_statements(Pooler(enabled=True))]
    (create,) = [s for s in statements if s.startswith("CREATE OR REPLACE FUNCTION")]
    assert '"pgbouncer"."get_auth"(p_usename text)' in create
    assert "SECURITY DEFINER" in create
    assert "SET search_path = pg_catalog, pg_temp" in create
    assert "rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now()" in create
    assert "NOT a.rolsuper" in create
    assert "NOT a.rolreplication" in create
    assert "a.rolcanlogin" in create
    assert AUTH_BODY.replace("'", "''") in create


def test_execute_is_for_the_lookup_role_alone() -> None:
    statements = [s.sql for s in auth_function_statements(Pooler(enabled=True, auth_user="lookup"))]
    assert 'REVOKE ALL ON FUNCTION "pgbouncer"."get_auth"(text) FROM PUBLIC' in statements
    assert 'REVOKE ALL ON SCHEMA "pgbouncer" FROM PUBLIC' in statements
    grants = [s for s in statements if s.startswith("GRANT")]
    assert grants == [
        'GRANT USAGE ON SCHEMA "pgbouncer" TO "lookup"',
        'GRANT EXECUTE ON FUNCTION "pgbouncer"."get_auth"(text) TO "lookup"',
    ]
    # revoked before granted, created before either
    assert statements.index('REVOKE ALL ON FUNCTION "pgbouncer"."get_auth"(text) FROM PUBLIC') < statements.index(
        grants[1]
    )
    assert statements[0] == 'CREATE SCHEMA IF NOT EXISTS "pgbouncer" AUTHORIZATION postgres'


# ------------------------------------------------------------------------------------- replica_checks


def member(name: str, role: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": name, "role": role, "state": "streaming", "timeline": 4, "lag": 0}
    if role == "leader":
        base = {"name": name, "role": role, "state": "running", "timeline": 4}
    return {**base, **kw}


def healthy() -> dict[str, Any]:
    return {
        "members": [
            member("db1", "leader"),
            member("db2", "sync_standby", lag=0),
            member("db3", "replica", lag=4096),
        ]
    }


ALL_TRUE = {"ha_members": True, "ha_streaming": True, "ha_lag": True, "ha_timeline": True}


def test_a_healthy_cluster_passes_every_check() -> None:
    assert replica_checks(ha(), healthy()) == ALL_TRUE


def test_a_stopped_replica_is_not_streaming() -> None:
    cluster = healthy()
    cluster["members"][2]["state"] = "stopped"
    assert replica_checks(ha(), cluster) == {**ALL_TRUE, "ha_streaming": False}


def test_lag_above_the_failover_maximum_fails() -> None:
    cluster = healthy()
    cluster["members"][2]["lag"] = ha().maximum_lag_on_failover + 1
    assert replica_checks(ha(), cluster) == {**ALL_TRUE, "ha_lag": False}
    cluster["members"][2]["lag"] = ha().maximum_lag_on_failover
    assert replica_checks(ha(), cluster)["ha_lag"] is True


@pytest.mark.parametrize("lag", ["unknown", None, "0"])
def test_lag_that_is_not_a_number_fails(lag: Any) -> None:
    cluster = healthy()
    cluster["members"][1]["lag"] = lag
    assert replica_checks(ha(), cluster) == {**ALL_TRUE, "ha_lag": False}


def test_a_replica_on_another_timeline_fails() -> None:
    cluster = healthy()
    cluster["members"][1]["timeline"] = 3
    assert replica_checks(ha(), cluster) == {**ALL_TRUE, "ha_timeline": False}


def test_a_missing_member_fails() -> None:
    cluster = healthy()
    del cluster["members"][2]
    assert replica_checks(ha(), cluster)["ha_members"] is False


def test_an_undeclared_member_fails() -> None:
    cluster = healthy()
    cluster["members"].append(member("db9", "replica"))
    assert replica_checks(ha(), cluster)["ha_members"] is False


@pytest.mark.parametrize(("index", "name", "role"), [(1, "db2", "leader"), (0, "db1", "replica")], ids=["two", "none"])
def test_not_exactly_one_leader_fails(index: int, name: str, role: str) -> None:
    cluster = healthy()
    cluster["members"][index] = member(name, role)
    checks = replica_checks(ha(), cluster)
    assert checks["ha_members"] is False
    assert checks["ha_timeline"] is False


def test_a_leader_alone_has_no_replicas_to_vouch_for() -> None:
    checks = replica_checks(Ha(enabled=True, members=["db1"], etcd=MEMBERS), {"members": [member("db1", "leader")]})
    assert checks == {"ha_members": True, "ha_streaming": False, "ha_lag": False, "ha_timeline": True}


@pytest.mark.parametrize("cluster", [None, {}, {"members": []}, {"members": None}])
def test_no_cluster_fails_everything(cluster: Any) -> None:
    assert replica_checks(ha(), cluster) == dict.fromkeys(ALL_TRUE, False)


# ------------------------------------------------------------------------------------------------ etcd


def test_etcd_environment_lists_every_member_and_uses_its_own_data_dir() -> None:
    h = ha(scope="orders", etcd=["db1", "db2", "db3", "w1", "w2"])
    addresses = {**ADDRESSES, "w1": "10.0.1.1", "w2": "10.0.1.2"}
    text = etcd_environment(h, "db2", addresses)
    assert text.startswith("# Managed by hearthdb")
    env = env_dict(text)
    assert env["ETCD_INITIAL_CLUSTER"].split(",") == [
        "db1=http://10.0.0.1:2380",
        "db2=http://10.0.0.2:2380",
        "db3=http://10.0.0.3:2380",
        "w1=http://10.0.1.1:2380",
        "w2=http://10.0.1.2:2380",
    ]
    assert env["ETCD_DATA_DIR"] == "/var/lib/etcd/hearthdb-orders"
    assert "/var/lib/etcd/default" not in text
    assert env["ETCD_NAME"] == "db2"
    assert env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://10.0.0.2:2380"
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == "http://10.0.0.2:2379"
    assert env["ETCD_INITIAL_CLUSTER_TOKEN"] == "hearthdb-orders"
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == "new"


# --------------------------------------------------------------------------------------------- Patroni


def patroni(h: Ha | None = None, listen: list[str] | None = None) -> dict[str, Any]:
    text = patroni_config(
        h or ha(),
        "db2",
        ADDRESSES,
        TARGET,
        listen if listen is not None else ["*"],
        PASSWORD,
        {"max_connections": 100, "hot_standby": True},
    )
    assert text.startswith("# Managed by hearthdb")
    return yaml.safe_load(text)


def paths_of(node: Any, value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a parsed document whose value is `value`."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in paths_of(v, value, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in paths_of(v, value, (*path, i))]
    return [path] if node == value else []


def keys_of(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in keys_of(v)}
    if isinstance(node, list):
        return {k for v in node for k in keys_of(v)}
    return set()


def test_patroni_config_leaves_pg_hba_to_hearthdb() -> None:
    doc = patroni()
    assert not {"pg_hba", "pg_ident"} & keys_of(doc["postgresql"])
    assert not {"pg_hba", "pg_ident"} & keys_of(doc["bootstrap"])


def test_patroni_config_points_at_debians_cluster() -> None:
    pg = patroni()["postgresql"]
    assert pg["custom_conf"] == TARGET.patroni_base_conf
    assert pg["config_dir"] == TARGET.etc == "/etc/postgresql/17/main"
    assert pg["data_dir"] == TARGET.data_directory
    assert pg["bin_dir"] == TARGET.bindir
    assert pg["listen"] == "0.0.0.0:5432"
    assert pg["connect_address"] == "10.0.0.2:5432"
    assert patroni(listen=["localhost", "10.0.0.2"])["postgresql"]["listen"] == "localhost,10.0.0.2:5432"


def test_the_replication_password_is_only_under_authentication() -> None:
    doc = patroni()
    assert sorted(paths_of(doc, PASSWORD)) == [
        ("postgresql", "authentication", "replication", "password"),
        ("postgresql", "authentication", "rewind", "password"),
    ]
    assert doc["postgresql"]["authentication"]["replication"]["username"] == "replicator"
    assert "password" not in doc["postgresql"]["authentication"]["superuser"]
    doc = patroni(ha(use_pg_rewind=False))
    assert paths_of(doc, PASSWORD) == [("postgresql", "authentication", "replication", "password")]


def test_patroni_reaches_etcd_at_the_given_addresses() -> None:
    h = ha(etcd=["db1", "db2", "w1"], addresses={"w1": "192.168.5.9"})
    addresses = {
        name: member_address(h, name, inventory)
        for name, inventory in {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3", "w1": "10.9.9.9"}.items()
    }
    assert addresses["w1"] == "192.168.5.9"  # ha.addresses wins over the inventory's
    doc = yaml.safe_load(patroni_config(h, "db2", addresses, TARGET, ["*"], PASSWORD, {}))
    assert doc["etcd3"]["hosts"] == ["10.0.0.1:2379", "10.0.0.2:2379", "192.168.5.9:2379"]
    assert doc["scope"] == "hearthdb"
    assert doc["namespace"] == "/hearthdb/"
    assert doc["name"] == "db2"
    assert doc["restapi"]["connect_address"] == "10.0.0.2:8008"


def test_member_address_falls_back_to_the_inventory_then_the_name() -> None:
    h = ha(addresses={"db1": "192.168.5.1"})
    assert member_address(h, "db1", "10.0.0.1") == "192.168.5.1"
    assert member_address(h, "db2", "10.0.0.2") == "10.0.0.2"
    assert member_address(h, "db3", None) == "db3"


def test_patroni_bootstraps_the_declared_dcs() -> None:
    h = ha(ttl=20, loop_wait=4, retry_timeout=6)
    dcs = patroni(h)["bootstrap"]["dcs"]
    assert dcs == dcs_config(h, {"max_connections": 100, "hot_standby": True})
    assert dcs["postgresql"]["parameters"] == {"hot_standby": "on", "max_connections": 100}
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (20, 4, 6)


# --------------------------------------------------------------------------------------------- HAProxy


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            current = line
            out[current] = []
        elif current is not None and line.strip():
            out[current].append(line.strip())
    return out


def test_haproxy_has_one_server_per_member_in_each_listen_section() -> None:
    h = ha(endpoint={"port": 6000, "read_only_port": 6001})
    text = haproxy_config(h, ADDRESSES, 6432)
    listens = {k: v for k, v in sections(text).items() if k.startswith("listen ")}
    assert set(listens) == {"listen hearthdb_primary", "listen hearthdb_replicas"}
    for lines in listens.values():
        servers = [ln for ln in lines if ln.startswith("server ")]
        assert [ln.split()[1:3] for ln in servers] == [[n, f"{ADDRESSES[n]}:6432"] for n in MEMBERS]
        assert all("check port 8008" in ln for ln in servers)
    assert "http-check send meth GET uri /primary" in listens["listen hearthdb_primary"]
    assert "http-check send meth GET uri /replica" in listens["listen hearthdb_replicas"]
    assert "bind *:6000" in listens["listen hearthdb_primary"]
    assert "bind *:6001" in listens["listen hearthdb_replicas"]


# ------------------------------------------------------------------------------------------- PgBouncer


def ini(text: str) -> tuple[list[str], dict[str, str]]:
    databases, settings, section = [], {}, None
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[databases]":
            databases.append(line)
        elif section == "[pgbouncer]":
            key, _, value = line.partition(" = ")
            settings[key] = value
    return databases, settings


def test_pgbouncer_passes_scram_through_with_no_password_anywhere() -> None:
    text = pgbouncer_ini(Pooler(enabled=True), ["logos_db", "aletheia_db"], TARGET, None)
    assert "password" not in text.lower()
    databases, settings = ini(text)
    assert settings["auth_type"] == "scram-sha-256"
    assert settings["auth_user"] == "pgbouncer_auth"
    assert settings["auth_dbname"] == "postgres"
    assert re.fullmatch(r"SELECT usename, passwd FROM pgbouncer\.get_auth\(\$1\)", settings["auth_query"])
    assert settings["pool_mode"] == "transaction"
    assert databases == [
        "logos_db = host=/var/run/postgresql port=5432 dbname=logos_db",
        "aletheia_db = host=/var/run/postgresql port=5432 dbname=aletheia_db",
        "postgres = host=/var/run/postgresql port=5432 dbname=postgres",
    ]
    assert not any("user=" in d for d in databases)
    assert not any(k.startswith("client_tls") for k in settings)


def test_pgbouncer_lists_postgres_once() -> None:
    databases, _ = ini(pgbouncer_ini(Pooler(enabled=True), ["postgres", "logos_db"], TARGET, None))
    assert [d.split(" = ")[0] for d in databases] == ["postgres", "logos_db"]


def test_pgbouncer_tls_for_clients() -> None:
    _, settings = ini(pgbouncer_ini(Pooler(enabled=True), ["logos_db"], TARGET, ("require", "/c.crt", "/c.key")))
    assert (settings["client_tls_sslmode"], settings["client_tls_cert_file"], settings["client_tls_key_file"]) == (
        "require",
        "/c.crt",
        "/c.key",
    )


# ------------------------------------------------------------------------------------------ hba, ident


def test_hba_lines_peer_for_the_lookup_role_only_with_the_pooler() -> None:
    line = f"local postgres pgbouncer_auth peer map={IDENT_MAP}"
    assert line in hba_lines(None, ADDRESSES, Pooler(enabled=True), False, False)
    assert line in hba_lines(ha(), ADDRESSES, Pooler(enabled=True), False, False)
    assert not any("pgbouncer_auth" in ln for ln in hba_lines(ha(), ADDRESSES, Pooler(), False, False))
    assert not any("pgbouncer_auth" in ln for ln in hba_lines(ha(), ADDRESSES, None, False, False))
    assert hba_lines(None, ADDRESSES, None, False, False) == []
    assert hba_lines(Ha(), ADDRESSES, Pooler(), True, True) == []


def test_hba_lines_replication_from_every_member() -> None:
    lines = hba_lines(ha(), ADDRESSES, None, False, False)
    assert lines[0] == "local replication replicator scram-sha-256"
    for name in MEMBERS:
        assert f"host replication replicator {ADDRESSES[name]}/32 scram-sha-256" in lines
        assert f"host postgres replicator {ADDRESSES[name]}/32 scram-sha-256" in lines  # pg_rewind's
    assert len(lines) == 1 + 2 * len(MEMBERS)
    assert not any(ln.startswith("host all all") for ln in lines)


def test_hba_lines_hostssl_when_tls_is_required() -> None:
    lines = hba_lines(ha(), ADDRESSES, None, True, True)
    remote = [ln for ln in lines if not ln.startswith("local ")]
    assert remote
    assert all(ln.startswith("hostssl ") for ln in remote)
    assert [ln for ln in remote if " all all " in ln] == [
        f"hostssl all all {ADDRESSES[n]}/32 scram-sha-256" for n in MEMBERS
    ]


def test_hba_lines_without_pg_rewind_and_other_address_kinds() -> None:
    addresses = {"db1": "fd00::1", "db2": "db2.example.org", "db3": "10.0.0.3"}
    lines = hba_lines(ha(use_pg_rewind=False), addresses, None, False, False)
    assert lines == [
        "local replication replicator scram-sha-256",
        "host replication replicator fd00::1/128 scram-sha-256",
        "host replication replicator db2.example.org scram-sha-256",
        "host replication replicator 10.0.0.3/32 scram-sha-256",
    ]


def test_ident_maps_postgres_to_the_lookup_role_only_with_the_pooler() -> None:
    mapping = f"{IDENT_MAP} postgres pgbouncer_auth"
    with_pooler = ident_content(Pooler(enabled=True)).splitlines()
    assert mapping in with_pooler
    assert [ln for ln in with_pooler if not ln.startswith("#")] == [mapping]
    for off in (Pooler(), None):
        assert [ln for ln in ident_content(off).splitlines() if not ln.startswith("#")] == []
    assert f"{IDENT_MAP} postgres lookup" in ident_content(Pooler(enabled=True, auth_user="lookup")).splitlines()


# ---------------------------------------------------------------------------------- hearthdb.yml rules

HA = {"enabled": True, "members": ["a", "b", "c"]}


def test_the_replication_user_may_not_be_declared_again() -> None:
    with pytest.raises(ConfigError, match=r"ha\.replication_user: 'replicator' is also a declared role"):
        parse_config({"ha": HA, "roles": {"replicator": {}}})
    assert parse_config({"ha": HA, "roles": {"streamer": {}}}).ha.enabled


def test_the_auth_user_may_not_be_declared_again() -> None:
    with pytest.raises(ConfigError, match=r"pooler\.auth_user: 'pgbouncer_auth' is also a declared role"):
        parse_config({"pooler": {"enabled": True}, "roles": {"pgbouncer_auth": {}}})


def test_the_system_roles_may_not_be_derived_ones() -> None:
    with pytest.raises(ConfigError, match=r"ha\.replication_user: 'logos' is also a declared role"):
        parse_config({"ha": {**HA, "replication_user": "logos"}})


def test_pooled_databases_must_be_managed() -> None:
    with pytest.raises(ConfigError, match=r"pooler\.databases\[0\]: 'ghost_db' is not a database hearthdb manages"):
        parse_config({"pooler": {"enabled": True, "databases": ["ghost_db"]}})
    cfg = parse_config({"pooler": {"enabled": True, "databases": ["logos_db", "hearthminds_db"]}})
    assert cfg.pooler.databases == ["logos_db", "hearthminds_db"]


def test_ha_backups_need_a_repository_host_outside_the_cluster() -> None:
    with pytest.raises(ConfigError, match=r"hearthdb\.yml: backup\.repository\.host: required with ha"):
        parse_config({"ha": HA, "backup": {"enabled": True}})
    for inside, ha in (("b", HA), ("e", {**HA, "etcd": ["a", "b", "e"]})):
        with pytest.raises(ConfigError, match=rf"backup\.repository\.host: '{inside}' is a member of the ha cluster"):
            parse_config({"ha": ha, "backup": {"enabled": True, "repository": {"host": inside}}})
    cfg = parse_config({"ha": HA, "backup": {"enabled": True, "repository": {"host": "r"}}})
    # one stanza for every member, named for the scope: a failover hands it to the new leader
    assert {stanza_of(cfg, m) for m in HA["members"]} == {"hearthdb"}
    assert stanza_of(parse_config({"ha": {**HA, "scope": "mem-1"}, "backup": cfg.backup.model_dump()}), "a") == "mem-1"
    single = parse_config({"backup": {"enabled": True}})
    assert stanza_of(single, "db1") == "db1" and stanza_of(parse_config({}), "db1") is None


def test_backup_jobs_of_an_ha_member_run_only_where_patroni_leads() -> None:
    backup = parse_config({"ha": HA, "backup": {"enabled": True, "repository": {"host": "r"}}}).backup
    plain = timer_units(backup, "hearthdb")
    units = timer_units(backup, "hearthdb", condition=leader_condition(8008))
    assert set(units) == set(plain)
    for name, content in units.items():
        if name.endswith(".service"):
            (line,) = [x for x in content.splitlines() if x.startswith("ExecCondition=")]
            assert "http://127.0.0.1:8008/primary" in line and "$" not in line and "%" not in line  # systemd
            assert content.replace(line + "\n", "") == plain[name]
        else:
            assert content == plain[name]
    assert not any("ExecCondition" in c for c in plain.values())


def test_ha_rules_are_reported_with_their_key_path() -> None:
    with pytest.raises(ConfigError, match=r"hearthdb\.yml: ha\.etcd: 2 members; etcd needs an odd count"):
        parse_config({"ha": {**HA, "etcd": ["a", "b"]}})


def test_the_system_roles_are_desired_as_declared() -> None:
    cfg = parse_config({"ha": HA, "pooler": {"enabled": True}})
    roles = desired_roles(cfg)
    assert roles["replicator"].replication and roles["replicator"].login
    assert not roles["replicator"].superuser
    assert roles["replicator"].no_password is False
    assert roles["pgbouncer_auth"].login
    assert not roles["pgbouncer_auth"].replication
    assert not roles["pgbouncer_auth"].superuser
    assert roles["pgbouncer_auth"].no_password is True


def test_only_the_replication_role_gets_a_password() -> None:
    cfg = parse_config({"ha": HA, "pooler": {"enabled": True}})
    names = password_roles(cfg)
    assert "replicator" in names
    assert "pgbouncer_auth" not in names
    plain = parse_config({})
    assert "replicator" not in password_roles(plain)
    assert "replicator" not in desired_roles(plain)
    assert "pgbouncer_auth" not in desired_roles(plain)
