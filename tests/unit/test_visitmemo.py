"""The visit memo's shell and awk, run here on recorded inputs (the same mawk Debian hosts run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from operations.visitmemo import KEEP, KEY, RECORD, SPLIT, VISIT_PARALLEL, VISIT_PER_PART, visit_script

FP = f"{KEY}|logos_db|1796207966.7|1849|114|22"
DB_ROW = (
    '{"db" : "logos_db", "oid" : 16389, "extensions" : { "plpgsql" : "1.0", "vector" : "0.8.0" }, '
    '"commented" : null, "public_create" : false, "schemas" : {"public" : {"owner" : "pg_database_owner", '
    '"acl" : [["PUBLIC", "USAGE"]]}}, "objects" : [], "object_grants" : [], "default_acl" : []}'
)
LEDGER_ROW = (
    '{"db" : "logos_db", "oid" : 16389, "ledger" : [{"bundle" : "pp", "version" : 1, "name" : "proto", '
    '"sha256" : "ab"}], "ledger_owner" : ["logos","logos"]}'
)

NO_FIELD = DB_ROW.replace(', "public_create" : false', "")


def sh(script: str, cwd: Path, stdin: str = "") -> str:
    out = subprocess.run(["sh", "-c", f"t={cwd}; {script}"], input=stdin, capture_output=True, text=True, check=True)
    return out.stdout


def keep(tmp_path: Path, fingerprints: dict[str, str], memo: list[str]) -> dict[str, list[str]]:
    (tmp_path / "fp").write_text("".join(f"{oid}\t{fp}\n" for oid, fp in fingerprints.items()))
    (tmp_path / "memo.in").write_text("".join(f"{line}\n" for line in memo))
    for name in ("kept", "memo", "stale"):
        (tmp_path / name).write_text("")
    sh(f'{KEEP} "$t/fp" "$t/memo.in"', tmp_path)
    return {
        "kept": (tmp_path / "kept").read_text().splitlines(),
        "memo": (tmp_path / "memo").read_text().splitlines(),
        "stale": sorted(o for o in (tmp_path / "stale").read_text().split(",") if o),
    }


def test_an_unchanged_database_answers_from_the_memo(tmp_path: Path) -> None:
    memo = [f"16389\t{FP}\t{DB_ROW}", f"16389\t{FP}\t{LEDGER_ROW}"]
    assert keep(tmp_path, {"16389": FP}, memo) == {"kept": [DB_ROW, LEDGER_ROW], "memo": memo, "stale": []}


@pytest.mark.parametrize(
    ("fingerprint", "memo", "why"),
    [
        (FP.replace("|1849|", "|1850|"), [f"16389\t{FP}\t{DB_ROW}"], "a row written since"),
        ("other-script|" + FP.split("|", 1)[1], [f"16389\t{FP}\t{DB_ROW}"], "another script or version"),
        ("", [f"16389\t\t{DB_ROW}"], "no row counts (track_counts off)"),
        (FP, [], "never visited"),
        (FP, [f"16389\t{FP}\t{NO_FIELD}"], "a field missing"),
        (FP, [f"16389\t{FP}\t{LEDGER_ROW}"], "a ledger row without the database row"),
        (
            FP,
            [f"16389\t{FP}\t{DB_ROW}", f"16389\t{FP}\t{LEDGER_ROW.replace('ledger_owner', 'owner')}"],
            "a bad ledger row",
        ),
        (FP, [f"16389\t{FP}\t" + '{"db" : "logos_db", "oid" : 16389}'], "a row of another shape"),
    ],
)
def test_a_database_is_visited_when(tmp_path: Path, fingerprint: str, memo: list[str], why: str) -> None:
    assert keep(tmp_path, {"16389": fingerprint, "5": "x"}, memo) == {
        "kept": [],
        "memo": [],
        "stale": ["16389", "5"],
    }, why


def test_only_the_changed_database_is_visited(tmp_path: Path) -> None:
    other = DB_ROW.replace("logos_db", "nous_db").replace("16389", "16400")
    memo = [f"16389\t{FP}\t{DB_ROW}", f"16400\t{FP}\t{other}"]
    got = keep(tmp_path, {"16389": FP, "16400": FP + "x"}, memo)
    assert got == {"kept": [DB_ROW], "memo": [memo[0]], "stale": ["16400"]}


def test_record_keys_each_visited_row_by_its_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "fp").write_text(f"16389\t{FP}\n5\t\n")
    postgres = DB_ROW.replace("logos_db", "postgres").replace("16389", "5")
    (tmp_path / "out").write_text(f"{DB_ROW}\n{LEDGER_ROW}\n{postgres}\n")
    # a database without a fingerprint is never recorded (it is visited every time)
    assert sh(f'{RECORD} "$t/fp" "$t/out"', tmp_path).splitlines() == [
        f"16389\t{FP}\t{DB_ROW}",
        f"16389\t{FP}\t{LEDGER_ROW}",
    ]


@pytest.mark.parametrize(
    ("databases", "files"), [(1, 1), (VISIT_PER_PART, 1), (VISIT_PER_PART + 1, 2), (400, VISIT_PARALLEL)]
)
def test_split_spreads_the_visits_over_at_most_the_parallel_processes(
    tmp_path: Path, databases: int, files: int
) -> None:
    script = "".join(f"\\connect db{i}\nSELECT {i};\n" for i in range(databases))
    sh(SPLIT, tmp_path, stdin=script)
    parts = sorted(tmp_path.glob("*.sql"))
    assert len(parts) == files
    texts = [p.read_text() for p in parts]
    assert sum(t.count("\\connect ") for t in texts) == databases  # every database once, with its query
    assert all(t.count("\\connect ") == t.count("SELECT ") for t in texts)


def test_validation_never_reads_the_memo_but_rewrites_it() -> None:
    with_memo, without = visit_script("psql", "/m"), visit_script("psql", "/m", use_memo=False)
    assert 'src=/m; [ -r "$src" ] || src=/dev/null' in with_memo
    assert "src=/dev/null;" in without and "src=/m" not in without
    assert '> "$m.new"' in without  # a full visit leaves a fresh memo behind
