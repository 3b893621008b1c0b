"""hearthdb benchmarks on lab hosts, each printing ratios measured side by side in the same run and
writing bench/results/<name>.json and <name>.png.

    .venv/bin/python bench/bench.py converge    # fresh converge, 10 AIs: hearthdb vs the floor, built-ins, Ansible
    .venv/bin/python bench/bench.py noop        # no-op rerun and --dry at 2, 20, 200 AIs
    .venv/bin/python bench/bench.py fleet       # 1 vs 5 hosts in one run
    .venv/bin/python bench/bench.py vector      # HNSW build and queries: derived config vs Debian's stock config
    .venv/bin/python bench/bench.py memory      # the pp schema with 100k memories: create, read, search
    .venv/bin/python bench/bench.py all

HEARTHDB_BENCH_HOST (default hdb1) names the lab host that converge, noop, vector and memory use.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import api  # noqa: E402
from lab.config import host_index  # noqa: E402
from operations.migrations import load_bundle  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
ANSIBLE_DIR = ROOT / "bench" / "ansible"
HOST = os.environ.get("HEARTHDB_BENCH_HOST", "hdb1")
WORK = Path(tempfile.mkdtemp(prefix="hearthdb-bench-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)  # it holds the generated passwords
SECRETS = WORK / "secrets.yml"


def ais(n: int) -> list[str]:
    return [f"ai{i:03d}" for i in range(n)]


def up(n: int = 1) -> None:
    """Hosts hdb1..hdbN up, and at least up to HOST."""
    api.up(max(n, host_index(HOST)))


def ssh(name: str, command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return api.ssh(name, command, stdin=stdin, timeout=3600)


def pyinfra(
    hosts: list[str], config: dict[str, Any], *args: str, entry: str = "deploy.py", env: dict | None = None
) -> tuple[float, str]:
    environ = {**api.deploy_env(WORK, api.inventory(hosts), config, SECRETS), **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run(
        [PYINFRA, "inventory.py", entry, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=3600
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{entry} failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stderr


def passwords(names: list[str]) -> dict[str, str]:
    store = yaml.safe_load(SECRETS.read_text()) if SECRETS.exists() else {}
    for n in names:
        store.setdefault(n, secrets.token_urlsafe(24))
    SECRETS.write_text(yaml.safe_dump(store))
    SECRETS.chmod(0o600)
    return store


def bundle_text(name: str) -> str:
    return "\n".join(m.up for m in load_bundle(name))


def floor(host: str, names: list[str]) -> float:
    pw = passwords(["hearthminds", *names])
    exports = [f"export AIS={' '.join(names)!r}"]
    exports += [f"export PASSWORD_{k}={v!r}" for k, v in pw.items() if k in ["hearthminds", *names]]
    exports += [f"export SCHEMA_HM={bundle_text('hm')!r}", f"export SCHEMA_PP={bundle_text('pp')!r}"]
    script = "\n".join(exports) + "\n" + (ROOT / "bench" / "floor.sh").read_text()
    start = time.perf_counter()
    ssh(host, "bash -s", stdin=script)
    return time.perf_counter() - start


def builtins(host: str, names: list[str]) -> float:
    pw = passwords(["hearthminds", *names])
    env = {"BENCH_AIS": " ".join(names), "BENCH_SCHEMA_HM": bundle_text("hm"), "BENCH_SCHEMA_PP": bundle_text("pp")}
    env.update({f"PASSWORD_{k}": v for k, v in pw.items()})
    elapsed, _ = pyinfra([host], {}, "-y", entry="bench/builtin_deploy.py", env=env)
    return elapsed


def ansible_playbook(host: str, names: list[str]) -> tuple[float, str]:
    """bench/ansible/playbook.yml on one host: time and output. Secrets reach ansible-playbook in a vars file
    (mode 0600), never on its command line; each run has its own SSH control path directory, so it pays for
    its own connection like every other tool here."""
    pw = passwords(["hearthminds", *names])
    schema = {}
    for bundle in ("hm", "pp"):
        schema[f"schema_{bundle}_file"] = str(WORK / f"{bundle}.sql")
        (WORK / f"{bundle}.sql").write_text(bundle_text(bundle))
    extra = WORK / "ansible-vars.yml"
    with os.fdopen(os.open(extra, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        yaml.safe_dump({"ais": names, "passwords": {n: pw[n] for n in ["hearthminds", *names]}, **schema}, f)
    inv = WORK / "ansible-hosts.yml"
    lab_hosts = {}
    for h in api.inventory([host])["hosts"]:
        lab_hosts[h["name"]] = {
            "ansible_host": h["host"],
            "ansible_user": h["user"],
            "ansible_ssh_private_key_file": h["key"],
            "ansible_ssh_common_args": "-o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        }
    inv.write_text(yaml.safe_dump({"all": {"hosts": lab_hosts}}))
    control = tempfile.mkdtemp(prefix="cp-", dir=WORK)
    environ = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": control,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inv), "-e", f"@{extra}", str(ANSIBLE_DIR / "playbook.yml")],
        cwd=ANSIBLE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def ansible(host: str, names: list[str]) -> float:
    return ansible_playbook(host, names)[0]


def ansible_changes(output: str) -> int:
    """The changed= count of PLAY RECAP."""
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", output.split("PLAY RECAP", 1)[-1]))


def hearthdb(hosts: list[str], names: list[str], *args: str, config: dict | None = None) -> float:
    passwords(["hearthminds", *names])
    elapsed, _ = pyinfra(hosts, {"ai_names": names, **(config or {})}, *(args or ("-y",)))
    return elapsed


def save(name: str, data: dict[str, Any], plot: Any) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    plot(ax)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


def bars(ax: Any, labels: list[str], values: list[float], ylabel: str, title: str) -> None:
    ax.bar(labels, values, color=["#3b6ea5", "#8a8a8a", "#c97b2a", "#6a9a4a"][: len(labels)])
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def bench_converge() -> dict[str, Any]:
    """Fresh converge of one plain Debian 13 host (apt through the warm proxy) with 10 AIs."""
    up()
    names, out = ais(10), {}
    api.reset(HOST, layer=None)
    floor(HOST, names)  # untimed: fills the lab's apt proxy, so that no tool pays for a cold one
    for tool, run in (
        ("floor", lambda: floor(HOST, names)),
        ("hearthdb", lambda: hearthdb([HOST], names)),
        ("pyinfra built-ins", lambda: builtins(HOST, names)),
        ("ansible", lambda: ansible(HOST, names)),
    ):
        api.reset(HOST, layer=None)
        out[tool] = round(run(), 2)
    out["ratio hearthdb/floor"] = round(out["hearthdb"] / out["floor"], 2)
    out["ratio built-ins/hearthdb"] = round(out["pyinfra built-ins"] / out["hearthdb"], 2)
    out["ratio ansible/hearthdb"] = round(out["ansible"] / out["hearthdb"], 2)
    tools = ["floor", "hearthdb", "pyinfra built-ins", "ansible"]
    save(
        "converge",
        out,
        lambda ax: bars(ax, tools, [out[t] for t in tools], "seconds", "Fresh converge, 10 AIs, one host"),
    )
    return out


def median(run: Any, *args: Any, times: int = 3) -> float:
    return round(statistics.median(run(*args) for _ in range(times)), 2)


def bench_noop() -> dict[str, Any]:
    """No-op rerun and --dry on a converged host, 2/20/200 AIs; and whether each tool changes anything."""
    up()
    out: dict[str, Any] = {}
    for n in (2, 20, 200):
        names = ais(n)
        api.reset(HOST, layer="postgresql")
        hearthdb([HOST], names)
        row = {  # the median of three runs each
            "hearthdb rerun": median(hearthdb, [HOST], names),
            "hearthdb --dry": median(hearthdb, [HOST], names, "--dry"),
            "floor rerun": median(floor, HOST, names),
        }
        _, err = pyinfra([HOST], {"ai_names": names}, "-y")
        total = re.search(r"Grand total\s+(\d+)\s+(\S+)", err)
        row["hearthdb changes on rerun"] = bool(total and total.group(2) != "-")
        builtins(HOST, names)
        row["built-ins rerun"] = round(builtins(HOST, names), 2)
        ansible(HOST, names)
        seconds, output = ansible_playbook(HOST, names)
        row["ansible rerun"] = round(seconds, 2)
        row["ansible changes on rerun"] = ansible_changes(output)
        row["ratio ansible/hearthdb"] = round(row["ansible rerun"] / row["hearthdb rerun"], 1)
        row["ratio built-ins/hearthdb"] = round(row["built-ins rerun"] / row["hearthdb rerun"], 1)
        out[str(n)] = row
    out["hearthdb 200/2"] = round(out["200"]["hearthdb rerun"] / out["2"]["hearthdb rerun"], 2)

    def plot(ax: Any) -> None:
        xs = [2, 20, 200]
        for key in ("hearthdb rerun", "hearthdb --dry", "floor rerun", "built-ins rerun", "ansible rerun"):
            ax.plot(xs, [out[str(x)][key] for x in xs], marker="o", label=key)
        ax.set_xscale("log")
        ax.set_xlabel("AIs")
        ax.set_ylabel("seconds")
        ax.set_title("No-op rerun on a converged host")
        ax.legend()

    save("noop", out, plot)
    return out


def bench_fleet() -> dict[str, Any]:
    api.up(5)
    names = ais(10)
    out = {}
    for hosts in (["hdb1"], [f"hdb{i}" for i in range(1, 6)]):
        for h in hosts:
            api.reset(h, layer="postgresql")
        out[f"{len(hosts)} host(s)"] = round(hearthdb(hosts, names), 2)
    out["ratio 5/1"] = round(out["5 host(s)"] / out["1 host(s)"], 2)
    keys = ["1 host(s)", "5 host(s)"]
    save("fleet", out, lambda ax: bars(ax, keys, [out[k] for k in keys], "seconds", "Fresh converge, 10 AIs each"))
    return out


# Clustered vectors: centres uniform in [-1, 1]^dim, members spread as widely as the centres (cosine
# about 0.5 to their centre, like embeddings of one topic). Tight, well separated clusters would leave
# whole clusters unreachable in the HNSW graph whatever the query settings, which no real corpus does.
SPREAD = 2.0

VECTORS = """
SELECT setseed(0.42);
CREATE TABLE centres AS SELECT c, array_agg(random() * 2 - 1) AS v
  FROM generate_series(1, {centres}) c, generate_series(1, {dim}) d GROUP BY c;
CREATE TABLE items (id bigint PRIMARY KEY, embedding vector({dim}));
INSERT INTO items SELECT i, (SELECT array_agg(x + (random() - 0.5) * {spread}) FROM unnest(v) x)::vector
  FROM generate_series(1, {rows}) i JOIN centres ON c = 1 + i % {centres};
{hint}
VACUUM (ANALYZE) items;
"""

# pgvector stores 768-d vectors out of line: the heap alone is too small for the planner to give an
# index build any parallel workers unless the table says how many it may have.
PARALLEL_HINT = "ALTER TABLE items SET (parallel_workers = 2);"


def psql_time(host: str, db: str, sql: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = ssh(host, f"sudo -u postgres psql -X -q -A -t -v ON_ERROR_STOP=1 -d {db}", stdin=sql)
    return time.perf_counter() - start, proc.stdout + proc.stderr


def queries(host: str, db: str, table: str, n: int = 100, k: int = 10) -> dict[str, float]:
    """p50/p95 of top-k HNSW queries, and recall@k against exact search, for n of the table's vectors, at
    the server's hnsw.ef_search (the configuration under test decides it)."""
    script = f"""
CREATE TEMP TABLE q AS SELECT id, embedding FROM {table} ORDER BY id LIMIT {n};
CREATE TEMP TABLE res (qid text, ms float8, ann text[], exact text[]);
DO $$
DECLARE r record; t0 timestamptz; a text[]; e text[];
BEGIN
  FOR r IN SELECT * FROM q LOOP
    t0 := clock_timestamp();
    SELECT array_agg(id::text) INTO a FROM (SELECT id FROM {table} ORDER BY embedding <=> r.embedding LIMIT {k}) s;
    INSERT INTO res VALUES (r.id::text, extract(epoch FROM clock_timestamp() - t0) * 1000, a, NULL);
  END LOOP;
  SET LOCAL enable_indexscan = off;
  FOR r IN SELECT * FROM q LOOP
    SELECT array_agg(id::text) INTO e FROM (SELECT id FROM {table} ORDER BY embedding <=> r.embedding LIMIT {k}) s;
    UPDATE res SET exact = e WHERE qid = r.id::text;
  END LOOP;
END $$;
SELECT json_build_object(
  'p50_ms', percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
  'p95_ms', percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
  'recall_at_10', avg((SELECT count(*) FROM unnest(ann) x WHERE x = ANY(exact))::float8 / {k}),
  'ef_search', current_setting('hnsw.ef_search')::int)
FROM res;
"""
    _, out = psql_time(host, db, script)
    return {k: round(v, 3) for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def bench_vector(rows: int = 50000, dim: int = 768) -> dict[str, Any]:
    """HNSW build of `rows` clustered vectors: derived settings vs Debian's stock configuration."""
    up()
    out: dict[str, Any] = {"rows": rows, "dim": dim}
    stock = {"sizing": {"enabled": False}}
    for label, config, hint in (
        ("stock, one process", stock, ""),  # the table as created, no parallel_workers
        ("stock", stock, PARALLEL_HINT),  # the same table and index as the derived run
        ("derived", {}, PARALLEL_HINT),
    ):
        api.reset(HOST, layer="postgresql")
        hearthdb([HOST], ["logos"], config=config)
        psql_time(HOST, "logos_db", VECTORS.format(rows=rows, dim=dim, centres=100, spread=SPREAD, hint=hint))
        seconds, notices = psql_time(
            HOST, "logos_db", "CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops);"
        )
        out[label] = {
            "build_s": round(seconds, 1),
            "graph_overflow_notice": "no longer fits into maintenance_work_mem" in notices,
            **queries(HOST, "logos_db", "items"),
        }
    out["build speed-up"] = round(out["stock"]["build_s"] / out["derived"]["build_s"], 2)
    out["build speed-up vs one process"] = round(out["stock, one process"]["build_s"] / out["derived"]["build_s"], 2)
    labels = ["stock, one process", "stock", "derived"]
    save(
        "vector",
        out,
        lambda ax: bars(ax, labels, [out[k]["build_s"] for k in labels], "seconds", f"HNSW build, {rows} x {dim}"),
    )
    return out


def bench_memory(rows: int = 100000, dim: int = 384, samples: int = 300) -> dict[str, Any]:
    """The pp schema: durable single-row creates, reads by id, top-10 similarity search (p95)."""
    up()
    api.reset(HOST, layer="postgresql")
    hearthdb([HOST], ["logos"], config={"schema": {"embedding_dim": dim}})
    fill = f"""
SELECT setseed(0.17);
CREATE TEMP TABLE centres AS SELECT c, array_agg(random() * 2 - 1) AS v
  FROM generate_series(1, 200) c, generate_series(1, {dim}) d GROUP BY c;
INSERT INTO memory_shards (content, tags, embedding, importance)
SELECT 'memory ' || i, ARRAY['t' || (i % 13)],
       (SELECT array_agg(x + (random() - 0.5) * {SPREAD}) FROM unnest(v) x)::vector, random()
FROM generate_series(1, {rows}) i JOIN centres ON c = 1 + i % 200;
VACUUM (ANALYZE) memory_shards;  -- as autovacuum would, before anything is timed
"""
    psql_time(HOST, "logos_db", fill)
    timing = f"""
SET synchronous_commit = on;
CREATE TEMP TABLE t (op text, ms float8);
DO $$
DECLARE t0 timestamptz; v vector; rid uuid; i int;
BEGIN
  FOR i IN 1..{samples} LOOP
    SELECT embedding INTO v FROM memory_shards ORDER BY random() LIMIT 1;
    t0 := clock_timestamp();
    SELECT id INTO rid FROM memory_shards WHERE content = 'memory ' || (1 + (i * 331) % {rows});
    t0 := clock_timestamp();
    PERFORM * FROM memory_shards WHERE id = rid;
    INSERT INTO t VALUES ('read', extract(epoch FROM clock_timestamp() - t0) * 1000);
    t0 := clock_timestamp();
    PERFORM id FROM memory_shards ORDER BY embedding <=> v LIMIT 10;
    INSERT INTO t VALUES ('search', extract(epoch FROM clock_timestamp() - t0) * 1000);
  END LOOP;
END $$;
SELECT json_object_agg(op, p95) FROM (SELECT op, percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) p95
  FROM t GROUP BY op) s;
"""
    _, body = psql_time(HOST, "logos_db", timing)
    p95 = json.loads(body.strip().splitlines()[-1])
    # creates: one durable transaction each (synchronous_commit on), timed by psql around each
    script = "\n".join(
        f"INSERT INTO memory_shards (content, embedding) SELECT 'new {i}', embedding FROM memory_shards LIMIT 1;"
        for i in range(samples)
    )
    _, timed = psql_time(HOST, "logos_db", "\\timing on\n" + script)
    ms = sorted(float(line.split()[1]) for line in timed.splitlines() if line.startswith("Time:"))
    recall = queries(HOST, "logos_db", "memory_shards")
    out = {
        "rows": rows,
        "dim": dim,
        "create_p95_ms": round(statistics.quantiles(ms, n=20)[18], 3),
        "read_by_id_p95_ms": round(p95["read"], 3),
        "search_top10_p95_ms": round(p95["search"], 3),
        **{f"search_{k}": v for k, v in recall.items()},
    }
    keys = ["create_p95_ms", "read_by_id_p95_ms", "search_top10_p95_ms"]
    save(
        "memory",
        out,
        lambda ax: bars(
            ax,
            ["create", "read by id", "top-10 search"],
            [out[k] for k in keys],
            "ms (p95)",
            f"pp schema, {rows} memories, {dim}-d",
        ),
    )
    return out


BENCHES = {
    "converge": bench_converge,
    "noop": bench_noop,
    "fleet": bench_fleet,
    "vector": bench_vector,
    "memory": bench_memory,
}


def main() -> None:
    chosen = sys.argv[1:] or ["all"]
    names = list(BENCHES) if chosen == ["all"] else chosen
    for name in names:
        print(f"== {name}", flush=True)
        print(json.dumps(BENCHES[name](), indent=2), flush=True)


if __name__ == "__main__":
    main()
