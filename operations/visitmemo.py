"""The visit of every database, and the memo that spares revisiting the unchanged ones.

Reading a database's extensions, public-schema rights and migration ledger needs a connection to it
(a backend start, ~6 ms). The visit script below runs on the host, as postgres, in one command:

1. `FINGERPRINT_QUERY` gives every database's oid and a fingerprint of everything written in it since
   the statistics began (rows inserted, updated, deleted, catalog rows included, so any DDL, extension
   or grant changes it), with its name, the server's start time and `KEY` (a digest of the visit script
   and hearthdb's version).
2. `KEEP` compares them with the memo file the last visit wrote: a database whose fingerprint is equal
   and whose recorded rows carry every field of `DATABASE_FIELDS` (`LEDGER_FIELDS` for a ledger row,
   `CRON_FIELDS` for pg_cron's jobs)
   answers from the memo; every other one is visited.
3. `SPLIT` spreads the visits over up to `VISIT_PARALLEL` psql processes; `RECORD` writes the new memo.

When the memo can be behind: never for what hearthdb itself changes or reads through the fingerprint.
It can be behind only for a change that writes no row in the database: one made while the statistics
collector lost counts (after a crash, `pg_stat_reset()` changes `stats_reset`, which is in the
fingerprint), or on a server with `track_counts = off` (then the fingerprint is empty and every database
is visited). Validation never reads through it (`use_memo=False`), so a run's checks see the server.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shlex

from .queries import PER_DATABASE_SCRIPT

# Databases visited by one psql process before a second one runs beside it, and the most processes.
VISIT_PER_PART = 25
VISIT_PARALLEL = 4

# The fields a recorded row must carry to be reused (the keys `PgState.process` reads).
DATABASE_FIELDS = (
    "db",
    "oid",
    "extensions",
    "commented",
    "public_create",
    "schemas",
    "objects",
    "object_grants",
    "default_acl",
)
LEDGER_FIELDS = ("db", "oid", "ledger", "ledger_owner")
CRON_FIELDS = ("db", "oid", "cron_jobs")


def _version() -> str:
    try:
        return importlib.metadata.version("hearthdb")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "checkout"


# Rows recorded by another visit script or another hearthdb are never reused.
KEY = hashlib.sha256(f"{_version()}\n{PER_DATABASE_SCRIPT}".encode()).hexdigest()[:16]

FINGERPRINT_QUERY = r"""
SELECT d.oid || E'\t' || CASE WHEN current_setting('track_counts')::bool THEN concat_ws('|', '{key}', d.datname,
         extract(epoch FROM pg_postmaster_start_time()), s.tup_inserted, s.tup_updated, s.tup_deleted,
         extract(epoch FROM s.stats_reset)) ELSE '' END
FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
WHERE d.datallowconn ORDER BY d.oid
""".strip().format(key=KEY)

# The per-database script for the databases to visit (`:stale`, a comma-separated oid list).
GENERATE_QUERY = (
    f"SELECT format($hdbd${PER_DATABASE_SCRIPT}$hdbd$, quote_ident(datname)) "
    "FROM pg_database WHERE datallowconn AND oid = ANY(string_to_array(:'stale', ',')::oid[]) ORDER BY datname"
)

# Inputs "$t/fp" (oid TAB fingerprint) and the memo (oid TAB fingerprint TAB row); outputs in "$t": kept
# (rows reused), memo (their memo lines), stale (oids to visit, comma-terminated).
KEEP = (
    "awk -F'\\t' -v d=\"$t\" "
    f"-v dbf={','.join(DATABASE_FIELDS)} -v lgf={','.join(LEDGER_FIELDS)} -v crf={','.join(CRON_FIELDS)} "
    "'function valid(j,   need, f, k, i) { "
    'if (j ~ /"extensions" :/) need = dbf; else if (j ~ /"ledger" :/) need = lgf; '
    'else if (j ~ /"cron_jobs" :/) need = crf; else return 0; '
    'k = split(need, f, ","); for (i = 1; i <= k; i++) if (index(j, "\\"" f[i] "\\" :") == 0) return 0; '
    "return 1 } "
    "NR == FNR { fp[$1] = $2; next } "
    '($1 in fp) && fp[$1] != "" && fp[$1] == $2 { n[$1]++; line[$1, n[$1]] = $0; row[$1, n[$1]] = $3; '
    'if (!valid($3)) bad[$1] = 1; if ($3 ~ /"extensions" :/) full[$1] = 1 } '
    "END { for (o in fp) { if ((o in full) && !(o in bad)) { "
    'for (i = 1; i <= n[o]; i++) { print row[o, i] > (d "/kept"); print line[o, i] > (d "/memo") } } '
    'else printf "%s,", o > (d "/stale") } }\''
)
# The generated script on stdin, cut at `\connect` into "$t/N.sql".
SPLIT = (
    f'awk -v n={VISIT_PARALLEL} -v per={VISIT_PER_PART} -v d="$t" '
    '\'/^\\\\connect /{k++; i=int((k-1)/per); if (i>=n) i=(k-1)%n} {print > (d "/" i ".sql")}\''
)
# Inputs "$t/fp" and a visit's output rows; prints their memo lines.
RECORD = (
    "awk -F'\\t' 'NR == FNR { fp[$1] = $2; next } "
    'match($0, /"oid" : [0-9]+/) { o = substr($0, RSTART + 8, RLENGTH - 8); '
    'if (fp[o] != "") print o "\\t" fp[o] "\\t" $0 }\''
)


def visit_script(psql: str, memo: str, use_memo: bool = True, first: str = "SELECT 1 WHERE false") -> str:
    """Shell lines (run as postgres) that print the result of the query `first`, then the row(s) of every
    database: from the memo where its fingerprint is unchanged (unless `use_memo` is false), else from a
    visit; then rewrite the memo. `first` and the fingerprints share one psql process."""
    source = f'src={shlex.quote(memo)}; [ -r "$src" ] || src=/dev/null; ' if use_memo else "src=/dev/null; "
    return (
        f"umask 077; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT; m={shlex.quote(memo)}; "
        f'{psql} -c {shlex.quote(first)} -c "\\o $t/fp" -c {shlex.quote(FINGERPRINT_QUERY)}; '
        f'touch "$t/kept" "$t/memo" "$t/stale"; {source}'
        f'{KEEP} "$t/fp" "$src"; stale=$(sed \'s/,$//\' "$t/stale"); '
        f"if [ -n \"$stale\" ]; then printf '%s\\n' {shlex.quote(GENERATE_QUERY)} | "
        f'{psql} -v stale="$stale" | {SPLIT}; fi; '
        'pids=; for f in "$t"/*.sql; do if [ -e "$f" ]; then '
        f'{psql} -f "$f" > "$f.out" & pids="$pids $!"; fi; done; '
        'for p in $pids; do wait $p; done; cat "$t/kept"; '
        'for f in "$t"/*.out; do if [ -e "$f" ]; then cat "$f"; fi; done; '
        # the memo is an optimisation: a host where it cannot be written is visited in full each time
        f'if {{ cat "$t/memo"; for f in "$t"/*.out; do if [ -e "$f" ]; then {RECORD} "$t/fp" "$f"; fi; done; }} '
        '> "$m.new" 2>/dev/null; then mv -f "$m.new" "$m" 2>/dev/null || true; fi'
    )
