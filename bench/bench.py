"""hearthdb benchmarks on lab hosts, each printing ratios measured side by side in the same run and
writing bench/results/<name>.json and <name>.png.

    .venv/bin/python bench/bench.py converge    # fresh converge, 10 AIs: hearthdb vs the floor, built-ins, Ansible
    .venv/bin/python bench/bench.py noop        # no-op rerun and --dry at 2, 20, 200 AIs
    .venv/bin/python bench/bench.py fleet       # hearthdb vs the floor on 5 hosts at once, and 1 vs 5 hosts
    .venv/bin/python bench/bench.py vector      # HNSW build and queries: derived config vs Debian's stock config
    .venv/bin/python bench/bench.py memory      # the pp schema with 100k memories: create, read, search
    .venv/bin/python bench/bench.py backup      # pgBackRest on ~2 GB of 1536-d rows: backup, restore, RPO
    .venv/bin/python bench/bench.py ha          # Patroni failover and switchover under a writer, 3 members
    .venv/bin/python bench/bench.py pooler      # pgbench through PgBouncer vs direct, persistent and -C
    .venv/bin/python bench/bench.py all

    .venv/bin/python bench/bench.py noop --before REV --no-peers    # hearthdb at git revision REV beside this tree
    .venv/bin/python bench/bench.py converge --before REV           # the same for a fresh converge, floor beside
    .venv/bin/python bench/bench.py noop --sizes 2,20               # other AI counts than 2, 20, 200

--before REV checks REV out (git worktree, detached) into the bench's temporary directory and runs hearthdb from
there (pyinfra's cwd, so that REV's own operations/ is imported) beside this tree, in the same invocation: both
tables, and the ratio after/before. It applies to converge and noop. --no-peers leaves out the peers (noop: the
floor, built-ins and Ansible; converge: built-ins and Ansible, the floor stays).

HEARTHDB_BENCH_HOST (default hdb1) names the lab host that converge, noop, vector and memory use;
HEARTHDB_BENCH_FLEET (default "hdb3 hdb4 hdb5 hdb6 hdb7", or --hosts) the hosts of fleet;
HEARTHDB_BENCH_BACKUP (default "hdb4 hdb5 hdb6") backup's database, repository and second database host;
HEARTHDB_BENCH_FORGE (default hdb3) the host of forge; HEARTHDB_BENCH_HA (default "hdb3 hdb4 hdb5") the members of
ha; HEARTHDB_BENCH_POOLER (default "hdb6 hdb7") pooler's database host and the client host running pgbench.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
FLEET = os.environ.get("HEARTHDB_BENCH_FLEET", "hdb3 hdb4 hdb5 hdb6 hdb7").replace(",", " ").split()
SIZES = [2, 20, 200]
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


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed:\n{proc.stderr.strip()}")
    return proc.stdout.strip()


@dataclass(frozen=True)
class Tree:
    """A project tree that hearthdb runs from: this checkout ("after") or REV in a worktree ("before")."""

    label: str
    path: Path
    revision: str
    subject: str
    dirty: bool = False

    def short(self) -> str:
        return self.revision[:7] + ("+" if self.dirty else "")

    def describe(self) -> dict[str, Any]:
        return {"revision": self.revision, "subject": self.subject, "uncommitted changes": self.dirty}


def this_tree() -> Tree:
    return Tree("after", ROOT, git("rev-parse", "HEAD"), git("log", "-1", "--format=%s"), bool(git("status", "-s")))


def worktree(rev: str) -> Tree:
    """The project at git revision `rev`, checked out (detached) into WORK; the worktree goes at exit."""
    sha = git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
    path = WORK / f"before-{sha[:12]}"

    def remove() -> None:  # registered after WORK's removal, so it runs before it
        if subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True
        ).returncode:
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)

    atexit.register(remove)
    git("worktree", "add", "--quiet", "--detach", str(path), sha)
    return Tree("before", path, sha, git("log", "-1", "--format=%s", sha))


def pyinfra(
    hosts: list[str],
    config: dict[str, Any],
    *args: str,
    entry: str = "deploy.py",
    env: dict | None = None,
    tree: Path = ROOT,
) -> tuple[float, str]:
    """`pyinfra inventory.py ENTRY ARGS` with cwd `tree`: pyinfra imports that tree's operations/."""
    environ = {**api.deploy_env(WORK, api.inventory(hosts), config, SECRETS), **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run(
        [PYINFRA, "inventory.py", entry, *args], cwd=tree, env=environ, capture_output=True, text=True, timeout=3600
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{entry} ({tree}) failed:\n{proc.stderr[-3000:]}")
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


def floor_script(names: list[str]) -> str:
    pw = passwords(["hearthminds", *names])
    exports = [f"export AIS={' '.join(names)!r}"]
    exports += [f"export PASSWORD_{k}={v!r}" for k, v in pw.items() if k in ["hearthminds", *names]]
    exports += [f"export SCHEMA_HM={bundle_text('hm')!r}", f"export SCHEMA_PP={bundle_text('pp')!r}"]
    return "\n".join(exports) + "\n" + (ROOT / "bench" / "floor.sh").read_text()


def floor_fleet(hosts: list[str], names: list[str]) -> float:
    """The floor script on every host at once, one SSH session each: seconds until the last is done."""
    script = floor_script(names)
    start = time.perf_counter()
    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(lambda h: ssh(h, "bash -s", stdin=script), hosts))
    return time.perf_counter() - start


def floor(host: str, names: list[str]) -> float:
    return floor_fleet([host], names)


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


def hearthdb(hosts: list[str], names: list[str], *args: str, config: dict | None = None, tree: Path = ROOT) -> float:
    passwords(["hearthminds", *names])
    elapsed, _ = pyinfra(hosts, {"ai_names": names, **(config or {})}, *(args or ("-y",)), tree=tree)
    return elapsed


def ratio(a: float, b: float, digits: int = 2) -> float:
    return round(a / b, digits)


def show(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A table on stdout, its columns aligned."""
    cells = [header, *[[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(title)
    for row in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print(flush=True)


def save(name: str, data: dict[str, Any], plot: Callable[[Any], None], size: tuple[float, float] = (7, 4)) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    plot(ax)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


BLUE, LIGHT_BLUE, PURPLE, LIGHT_PURPLE = "#3b6ea5", "#9dbbdc", "#7b559e", "#c9b4dc"
GREY, ORANGE, GREEN = "#8a8a8a", "#c97b2a", "#6a9a4a"
PALETTE = [BLUE, GREY, ORANGE, GREEN, PURPLE]
X = "\N{MULTIPLICATION SIGN}"  # in plot titles


def value_label(v: float) -> str:
    return f"{v:.3g}"


def y_scale(ax: Any, values: list[float], rotated: bool = False) -> None:
    """A log y axis where the values span more than a decade, so that the small ones stay readable beside the
    large ones, else a linear one from 0; room above the tallest bar for its label either way."""
    from matplotlib.ticker import FuncFormatter

    positive = [v for v in values if v > 0]
    if not positive:
        return
    low, high = min(positive), max(positive)
    if high / low > 10:
        ax.set_yscale("log")
        ax.set_ylim(low / 2, high * (6 if rotated else 2.5))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if high / low < 300:  # few decades: 2 and 5 of each labelled too
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    else:
        ax.set_ylim(0, high * (1.3 if rotated else 1.15))


def bars(
    ax: Any, labels: list[str], values: list[float], ylabel: str, title: str, colors: list[str] | None = None
) -> None:
    """One bar per value, each labelled with it."""
    ax.bar(labels, values, color=colors or PALETTE[: len(labels)])
    for i, v in enumerate(values):
        ax.text(i, v, value_label(v), ha="center", va="bottom")
    y_scale(ax, values)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def grouped(ax: Any, groups: list[str], series: list[tuple[str, list[float], str]], ylabel: str, title: str) -> None:
    """The bars of every series (name, one value per group, colour) side by side in each group, each labelled
    with its value; the legend outside the axes, right."""
    width = 0.8 / len(series)
    rotated = len(series) * len(groups) > 10  # labels upright where they cannot fit side by side
    for j, (name, values, color) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, values, width, label=name, color=color)
        for x, v in zip(xs, values, strict=True):
            ax.text(x, v, value_label(v), ha="center", va="bottom", fontsize=7 if rotated else 9, rotation=90 * rotated)
    ax.set_xticks(range(len(groups)), groups)
    y_scale(ax, [v for _, values, _ in series for v in values], rotated)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)


def bench_converge(after: Tree, before: Tree | None = None, peers: bool = True) -> dict[str, Any]:
    """Fresh converge of one plain Debian 13 host (apt through the warm proxy) with 10 AIs: hearthdb (this tree,
    and with `before` that tree too) beside the floor, and pyinfra's built-ins and Ansible unless not `peers`.
    The host is reset before each."""
    up()
    names, out = ais(10), {}
    api.reset(HOST, layer=None)
    floor(HOST, names)  # untimed: fills the lab's apt proxy, so that no tool pays for a cold one
    runs: list[tuple[str, Callable[[], float]]] = [("floor", lambda: floor(HOST, names))]
    if before:
        runs.append(("hearthdb before", lambda: hearthdb([HOST], names, tree=before.path)))
    runs.append(("hearthdb", lambda: hearthdb([HOST], names)))
    if peers:
        runs += [("pyinfra built-ins", lambda: builtins(HOST, names)), ("ansible", lambda: ansible(HOST, names))]
    for tool, run in runs:
        api.reset(HOST, layer=None)
        out[tool] = round(run(), 2)
    out["ratio hearthdb/floor"] = ratio(out["hearthdb"], out["floor"])
    if peers:
        out["ratio built-ins/hearthdb"] = ratio(out["pyinfra built-ins"], out["hearthdb"])
        out["ratio ansible/hearthdb"] = ratio(out["ansible"], out["hearthdb"])
    tools = [tool for tool, _ in runs]
    seconds = [out[t] for t in tools]
    labels = {"hearthdb": "hearthdb", "pyinfra built-ins": "pyinfra\nbuilt-ins"}
    colors = {"floor": GREY, "hearthdb before": LIGHT_BLUE, "hearthdb": BLUE, "pyinfra built-ins": ORANGE}
    title = f"Fresh converge, 10 AIs, one host\nhearthdb/floor {out['ratio hearthdb/floor']}{X}"
    if before:
        b = out.pop("hearthdb before")
        out["before"] = {**before.describe(), "hearthdb": b, "ratio hearthdb/floor": ratio(b, out["floor"])}
        out["after"] = {
            **after.describe(),
            "hearthdb": out["hearthdb"],
            "ratio hearthdb/floor": out["ratio hearthdb/floor"],
        }
        out["ratio after/before"] = ratio(out["hearthdb"], b)
        labels |= {"hearthdb before": f"hearthdb\nbefore {before.short()}", "hearthdb": f"hearthdb\n{after.short()}"}
        title = (
            f"Fresh converge, 10 AIs, one host; hearthdb after/before {out['ratio after/before']}{X}\n"
            f"hearthdb/floor {out['before']['ratio hearthdb/floor']}{X} before, {out['ratio hearthdb/floor']}{X} after"
        )
    show(
        "fresh converge, 10 AIs, seconds" + (f"; before = {before.short()}, after = {after.short()}" if before else ""),
        ["tool", "seconds", "/floor"],
        [[t, s, s / seconds[0]] for t, s in zip(tools, seconds, strict=True)],
    )
    save(
        "converge",
        out,
        lambda ax: bars(
            ax, [labels.get(t, t) for t in tools], seconds, "seconds", title, [colors.get(t, GREEN) for t in tools]
        ),
    )
    return out


def median(run: Callable[[], float], times: int = 3) -> float:
    return round(statistics.median(run() for _ in range(times)), 2)


def noop_hearthdb(tree: Path, names: list[str]) -> dict[str, Any]:
    """hearthdb from `tree` on a host that it converged itself: no-op rerun and --dry, medians of three each, and
    whether a rerun reports any change."""
    api.reset(HOST, layer="postgresql")
    hearthdb([HOST], names, tree=tree)
    row: dict[str, Any] = {
        "hearthdb rerun": median(lambda: hearthdb([HOST], names, tree=tree)),
        "hearthdb --dry": median(lambda: hearthdb([HOST], names, "--dry", tree=tree)),
    }
    _, err = pyinfra([HOST], {"ai_names": names}, "-y", tree=tree)
    total = re.search(r"Grand total\s+(\d+)\s+(\S+)", err)
    row["hearthdb changes on rerun"] = bool(total and total.group(2) != "-")
    return row


def noop_peers(names: list[str], hearthdb_rerun: float) -> dict[str, Any]:
    """The floor (median of three), the built-ins and Ansible (each after an untimed run of its own) rerun on the
    converged host, and their ratios to hearthdb's rerun."""
    row: dict[str, Any] = {"floor rerun": median(lambda: floor(HOST, names))}
    builtins(HOST, names)
    row["built-ins rerun"] = round(builtins(HOST, names), 2)
    ansible(HOST, names)
    seconds, output = ansible_playbook(HOST, names)
    row["ansible rerun"] = round(seconds, 2)
    row["ansible changes on rerun"] = ansible_changes(output)
    row["ratio ansible/hearthdb"] = ratio(row["ansible rerun"], hearthdb_rerun, 1)
    row["ratio built-ins/hearthdb"] = ratio(row["built-ins rerun"], hearthdb_rerun, 1)
    return row


PEERS = [("floor rerun", "floor", GREY), ("built-ins rerun", "built-ins", ORANGE), ("ansible rerun", "ansible", GREEN)]


def bench_noop(after: Tree, before: Tree | None = None, peers: bool = True, sizes: list[int] = SIZES) -> dict[str, Any]:
    """No-op rerun and --dry on a converged host at each of `sizes` AIs, and whether each tool changes anything:
    hearthdb from this tree, and with `before` from that tree too (each on a host it converged itself), the
    floor, pyinfra's built-ins and Ansible unless not `peers`."""
    up()
    trees = [t for t in (before, after) if t]
    tables: dict[str, dict[str, Any]] = {t.label: {} for t in trees}
    for n in sizes:
        names = ais(n)
        for tree in trees:
            row = noop_hearthdb(tree.path, names)
            if peers and tree is after:
                row |= noop_peers(names, row["hearthdb rerun"])
            tables[tree.label][str(n)] = row
    if len(sizes) > 1:
        first, last = str(sizes[0]), str(sizes[-1])
        for table in tables.values():
            table[f"hearthdb {last}/{first}"] = ratio(table[last]["hearthdb rerun"], table[first]["hearthdb rerun"])
    rows = {t.label: [tables[t.label][str(n)] for n in sizes] for t in trees}
    peer_keys = [p for p in PEERS if peers and p[0] in rows["after"][0]]
    series: list[tuple[str, list[float], str]] = []
    if before:
        out: dict[str, Any] = {
            "before": {**before.describe(), **tables["before"]},
            "after": {**after.describe(), **tables["after"]},
            "ratio after/before": {
                str(n): {k: ratio(a[f"hearthdb {k}"], b[f"hearthdb {k}"]) for k in ("rerun", "--dry")}
                for n, b, a in zip(sizes, rows["before"], rows["after"], strict=True)
            },
        }
        quotients = out["ratio after/before"].values()
        header = ["AIs", f"rerun {before.short()}", f"rerun {after.short()}", "after/before"]
        header += [f"--dry {before.short()}", f"--dry {after.short()}", "after/before"]
        table_rows = [
            [
                n,
                b["hearthdb rerun"],
                a["hearthdb rerun"],
                q["rerun"],
                b["hearthdb --dry"],
                a["hearthdb --dry"],
                q["--dry"],
            ]
            for n, b, a, q in zip(sizes, rows["before"], rows["after"], quotients, strict=True)
        ]
        series += [
            (f"hearthdb rerun, before {before.short()}", [b["hearthdb rerun"] for b in rows["before"]], LIGHT_BLUE),
            (f"hearthdb rerun, {after.short()}", [a["hearthdb rerun"] for a in rows["after"]], BLUE),
            (f"--dry, before {before.short()}", [b["hearthdb --dry"] for b in rows["before"]], LIGHT_PURPLE),
            (f"--dry, {after.short()}", [a["hearthdb --dry"] for a in rows["after"]], PURPLE),
        ]
        title = "No-op rerun on a converged host, medians of three\nhearthdb rerun after/before: " + " / ".join(
            f"{q['rerun']}{X}" for q in quotients
        )
        title += " at " + " / ".join(map(str, sizes)) + " AIs"
    else:
        out = tables["after"]
        header = ["AIs", "rerun", "--dry"]
        table_rows = [[n, a["hearthdb rerun"], a["hearthdb --dry"]] for n, a in zip(sizes, rows["after"], strict=True)]
        series += [
            ("hearthdb rerun", [a["hearthdb rerun"] for a in rows["after"]], BLUE),
            ("hearthdb --dry", [a["hearthdb --dry"] for a in rows["after"]], PURPLE),
        ]
        title = "No-op rerun on a converged host, medians of three"
    header += [name for _, name, _ in peer_keys]
    for table_row, a in zip(table_rows, rows["after"], strict=True):
        table_row += [a[key] for key, _, _ in peer_keys]
    series += [(name, [a[key] for a in rows["after"]], color) for key, name, color in peer_keys]
    description = f"; before = {before.short()} {before.subject!r}, after = {after.short()}" if before else ""
    show(f"no-op rerun and --dry, seconds (medians of three){description}", header, table_rows)
    save(
        "noop",
        out,
        lambda ax: grouped(ax, [f"{n} AIs" for n in sizes], series, "seconds", title),
        size=(10, 4.5),
    )
    return out


def bench_fleet(hosts: list[str]) -> dict[str, Any]:
    """Fresh converge, 10 AIs each, of hosts on the postgresql layer: hearthdb on the first host alone and on all
    of them at once, beside the floor script on the same hosts the same way (concurrently, one SSH session each),
    so that both pay the same CPU contention. Each host is reset before each run."""
    if len(hosts) < 2:
        raise SystemExit("fleet needs at least 2 hosts")
    api.up(max(host_index(h) for h in hosts))
    names, n = ais(10), len(hosts)
    out: dict[str, Any] = {"hosts": hosts}
    for group in (hosts[:1], hosts):
        for key, run in ((f"floor {len(group)} host(s)", floor_fleet), (f"{len(group)} host(s)", hearthdb)):
            for h in group:
                api.reset(h, layer="postgresql")
            out[key] = round(run(group, names), 2)
    out[f"ratio {n}/1"] = ratio(out[f"{n} host(s)"], out["1 host(s)"])
    out[f"ratio floor {n}/1"] = ratio(out[f"floor {n} host(s)"], out["floor 1 host(s)"])
    out["ratio hearthdb/floor, 1 host(s)"] = ratio(out["1 host(s)"], out["floor 1 host(s)"])
    out[f"ratio hearthdb/floor, {n} host(s)"] = ratio(out[f"{n} host(s)"], out[f"floor {n} host(s)"])
    show(
        f"fresh converge, 10 AIs each, seconds; hosts {' '.join(hosts)}",
        ["hosts", "hearthdb", "floor", "hearthdb/floor"],
        [
            [k, out[f"{k} host(s)"], out[f"floor {k} host(s)"], out[f"ratio hearthdb/floor, {k} host(s)"]]
            for k in (1, n)
        ],
    )
    series = [
        ("hearthdb", [out["1 host(s)"], out[f"{n} host(s)"]], BLUE),
        ("floor", [out["floor 1 host(s)"], out[f"floor {n} host(s)"]], GREY),
    ]
    title = (
        f"Fresh converge, 10 AIs each (postgresql layer); {n}/1 hosts: hearthdb {out[f'ratio {n}/1']}{X}, "
        f"floor {out[f'ratio floor {n}/1']}{X}\nhearthdb/floor {out['ratio hearthdb/floor, 1 host(s)']}{X} on 1 host, "
        f"{out[f'ratio hearthdb/floor, {n} host(s)']}{X} on {n} at once (goal ≤ 1.15{X})"
    )
    save(
        "fleet", out, lambda ax: grouped(ax, ["1 host", f"{n} hosts at once"], series, "seconds", title), size=(8, 4.5)
    )
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


def bench_memory(rows: int = 100000, dim: int = 384, clients: int = 16, per_client: int = 100) -> dict[str, Any]:
    """The pp schema as an application sees it: durable single-row creates, reads by id, top-10 similarity
    search, from the controller through psycopg over TCP with TLS, `clients` concurrent clients on a pool
    (p95, throughput; one client alone beside it)."""
    import psycopg

    up()
    addr = api.reset(HOST, layer="postgresql")["address"]
    hearthdb([HOST], ["logos"], config={"schema": {"embedding_dim": dim}, **client_access(addr)})
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
    recall = queries(HOST, "logos_db", "memory_shards")
    dsn = client_dsn(addr, "logos_db", "logos")
    with psycopg.connect(dsn, autocommit=True) as c:
        ids = [r[0] for r in c.execute("SELECT id::text FROM memory_shards ORDER BY random() LIMIT 2000")]
        vectors = [r[0] for r in c.execute("SELECT embedding::text FROM memory_shards ORDER BY random() LIMIT 200")]

    def create(conn: Any, rnd: Any) -> None:
        conn.execute(
            "INSERT INTO memory_shards (content, embedding) VALUES (%s, %s::vector)", ("new", rnd.choice(vectors))
        )

    def read(conn: Any, rnd: Any) -> None:
        conn.execute("SELECT * FROM memory_shards WHERE id = %s", (rnd.choice(ids),)).fetchall()

    def search(conn: Any, rnd: Any) -> None:
        conn.execute(
            "SELECT id FROM memory_shards ORDER BY embedding <=> %s::vector LIMIT 10", (rnd.choice(vectors),)
        ).fetchall()

    timed = client_p95(dsn, {"create": create, "read_by_id": read, "search_top10": search}, clients, per_client)
    out = {"rows": rows, "dim": dim, "clients": clients, **timed, **{f"search_{k}": v for k, v in recall.items()}}
    keys = list(timed)
    show(
        f"memory: pp schema, {rows} memories, {dim}-d, TLS over the lab network (p95, ms)",
        ["operation", f"{clients} clients", "ops/s", "1 client", "ops/s"],
        [
            [k, timed[k]["p95_ms"], timed[k]["ops_per_s"], timed[k]["p95_1_client_ms"], timed[k]["ops_per_s_1_client"]]
            for k in keys
        ],
    )
    save(
        "memory",
        out,
        lambda ax: grouped(
            ax,
            ["create", "read by id", "top-10 search"],
            [
                (f"{clients} clients", [timed[k]["p95_ms"] for k in keys], BLUE),
                ("1 client", [timed[k]["p95_1_client_ms"] for k in keys], LIGHT_BLUE),
            ],
            "ms (p95, client-side)",
            f"pp schema, {rows} memories, {dim}-d, TLS",
        ),
        size=(9, 4),
    )
    return out


def client_access(addr: str) -> dict[str, Any]:
    """hearthdb.yml keys that let the controller reach a lab host's databases: TLS required, SCRAM."""
    net = ".".join(addr.split(".")[:3]) + ".0/24"
    return {
        "cluster": {"listen_addresses": ["*"]},
        "hba": [{"type": "local"}, {"type": "hostssl", "address": net}, {"type": "host", "address": "127.0.0.1/32"}],
        "tls": {"enabled": True, "require": True},
    }


def client_dsn(addr: str, db: str, role: str) -> str:
    pw = yaml.safe_load(SECRETS.read_text())[role]
    ca = WORK / ".hearthdb" / "tls" / "ca.crt"
    return (
        f"host={addr} port=5432 dbname={db} user={role} password={pw} sslmode=verify-ca sslrootcert={ca} "
        "connect_timeout=5"
    )


def client_p95(
    dsn: str, ops: dict[str, Callable[[Any, Any], None]], clients: int, per_client: int
) -> dict[str, dict[str, float]]:
    """Each operation timed on the controller around the call (the connection already taken from a pool of
    `clients` autocommit connections), first by one client alone, then by `clients` threads at once: p95 in ms
    and operations per second of each."""
    import random

    from psycopg_pool import ConnectionPool

    out: dict[str, dict[str, float]] = {}
    with ConnectionPool(dsn, min_size=clients, max_size=clients, open=True, kwargs={"autocommit": True}) as pool:
        pool.wait(timeout=30)
        for name, op in ops.items():
            for n in (1, clients):
                lat: list[float] = []

                def worker(seed_: int, op: Callable[[Any, Any], None] = op, lat: list[float] = lat) -> None:
                    rnd = random.Random(seed_)
                    for _ in range(per_client):
                        with pool.connection() as conn:
                            t = time.perf_counter()
                            op(conn, rnd)
                            lat.append((time.perf_counter() - t) * 1000)

                start = time.perf_counter()
                with ThreadPoolExecutor(n) as ex:
                    list(ex.map(worker, range(n)))
                wall = time.perf_counter() - start
                p95, rate = round(statistics.quantiles(lat, n=20)[18], 3), round(len(lat) / wall)
                key = "" if n == clients else "_1_client"
                out.setdefault(name, {}).update({f"p95{key}_ms": p95, f"ops_per_s{key}": rate})
    return out


BACKUP_HOSTS = os.environ.get("HEARTHDB_BENCH_BACKUP", "hdb4 hdb5 hdb6").replace(",", " ").split()

# Memory rows with 1536-d embeddings (random: embeddings do not compress), filled by two sessions at once.
MEMORIES_TABLE = "SET ROLE logos; CREATE TABLE memories (id bigint PRIMARY KEY, content text, embedding vector(1536))"
MEMORIES = """
SET ROLE logos;
INSERT INTO memories SELECT i, md5(i::text) || ' remembered', e.v::vector
  FROM generate_series({first}, {last}) i,
  LATERAL (SELECT array_agg(random()::real) AS v FROM generate_series(1, 1536) WHERE i > 0) e;
"""
WRITES = "CREATE TABLE IF NOT EXISTS writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"


def drop_caches() -> None:
    """Every timed copy starts from a cold page cache (the lab hosts share this machine's kernel)."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed_ssh(host: str, command: str) -> float:
    drop_caches()
    start = time.perf_counter()
    ssh(host, command)
    return round(time.perf_counter() - start, 2)


def timed_hearthdb(hosts: list[str], config: dict[str, Any], entry: str, *data: str) -> float:
    args = [a for d in data for a in ("--data", d)]
    drop_caches()
    elapsed, _ = pyinfra(hosts, config, "-y", "-v", *args, entry=entry)  # -v: a failing command's stderr shown
    return round(elapsed, 2)


def fill_memories(host: str, rows: int) -> None:
    half = rows // 2
    psql_time(host, "logos_db", MEMORIES_TABLE)
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(
                lambda r: psql_time(host, "logos_db", MEMORIES.format(first=r[0], last=r[1])),
                [(1, half), (half + 1, rows)],
            )
        )
    psql_time(host, "logos_db", "VACUUM (ANALYZE) memories; CHECKPOINT;")


def writer(host: dict[str, Any], password: str, stop: Any, acked: list[tuple[int, float]]) -> None:
    """Commits one row at a time over the network until `stop` is set (or the server is gone), noting the
    id and client time of every acknowledged commit."""
    import psycopg

    with psycopg.connect(
        host=host["address"], user="logos", password=password, dbname="logos_db", autocommit=True, connect_timeout=5
    ) as conn:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                conn.execute("INSERT INTO writes (id) VALUES (%s)", (i,))
            except psycopg.Error:
                return
            acked.append((i, time.time()))
            time.sleep(0.01)


# What each of hearthdb's pgBackRest defaults costs, as command-line overrides of its configuration: the
# defaults (lz4, process-max 2, block incremental, page checksums, no delta) and one change each.
BACKUP_VARIANTS = {
    "hearthdb's defaults": "",
    "zst (level 3)": "--compress-type=zst",
    "process-max 4": "--process-max=4",
    "delta (checksum every file)": "--delta",
    "no block incremental": "--no-repo1-block",
    "no page checksums": "--no-checksum-page",
}


def backup_variants(db: str, data: str, tar: float, untar: float) -> dict[str, dict[str, float]]:
    """Per variant, on the filled host: a full backup, a 1% change, an incremental, a restore of it into a
    scratch directory (pgBackRest alone, no hearthdb around it), each from a cold page cache and an empty
    archive queue."""
    pgb = f"cd /tmp; sudo -u postgres pgbackrest --stanza={db}"
    queue = f"{data}/pg_wal/archive_status"
    settle = f"for i in $(seq 600); do ls {queue} | grep -q ready || exit 0; sleep 0.5; done; exit 1"

    def newest() -> dict[str, Any]:
        return json.loads(ssh(db, f"{pgb} --output=json info").stdout)[0]["backup"][-1]

    out: dict[str, dict[str, float]] = {}
    for i, (name, opts) in enumerate(BACKUP_VARIANTS.items()):
        ssh(db, settle)
        row: dict[str, float] = {"full s": timed_ssh(db, f"{pgb} {opts} --type=full backup")}
        full = newest()
        change = f"UPDATE memories SET content = content || '!' WHERE id % 100 = {50 + i}; CHECKPOINT;"
        psql_time(db, "logos_db", change)  # 1% of the rows, other ones each time
        ssh(db, settle)
        row["incr s"] = timed_ssh(db, f"{pgb} {opts} --type=incr backup")
        incr = newest()
        scratch = "/var/tmp/variant-restore"
        row["restore s"] = timed_ssh(
            db,
            f"rm -rf {scratch} && install -d -m 700 -o postgres {scratch} && {pgb} --pg1-path={scratch} "
            f"--set={incr['label']} --type=immediate --archive-mode=off restore && sync",
        )
        ssh(db, f"rm -rf {scratch}")
        row["full repo MB"] = round(full["info"]["repository"]["delta"] / 1e6)
        row["incr repo MB"] = round(incr["info"]["repository"]["delta"] / 1e6, 1)
        row |= {
            "full/tar": ratio(row["full s"], tar),
            "incr/full": ratio(row["incr s"], row["full s"]),
            "restore/untar": ratio(row["restore s"], untar),
        }
        out[name] = row
    keys = ["full s", "full/tar", "incr s", "incr/full", "restore s", "restore/untar", "full repo MB", "incr repo MB"]
    title = f"pgBackRest alone, one change from hearthdb's defaults each (tar {tar} s, untar {untar} s)"
    show(title, ["variant", *keys], [[name, *(row[k] for k in keys)] for name, row in out.items()])
    save("backup-variants", out, lambda ax: plot_backup_variants(ax, out, title), size=(10, 4.5))
    return out


def plot_backup_variants(ax: Any, out: dict[str, dict[str, float]], title: str) -> None:
    steps = [("full", "full s", BLUE), ("incremental after 1%", "incr s", LIGHT_BLUE), ("restore", "restore s", PURPLE)]
    groups = [textwrap.fill(name, 14) for name in out]  # labels that fit under their bars
    series = [(label, [row[key] for row in out.values()], color) for label, key, color in steps]
    grouped(ax, groups, series, "seconds", title)


def bench_backup(size_gb: float = 2.0) -> dict[str, Any]:
    """pgBackRest on ~`size_gb` GB of 1536-d memory rows, on one lab host with its repository on the same
    disk: full backup beside pg_basebackup and a plain tar of the data directory (the floor), restore beside
    untarring, an incremental after a 1% change, a drill. Then the recovery point: the repository on a second
    host, writes committing one by one over the network, the database host power-killed, its backups
    restored on a third host; rows and seconds lost."""
    import threading

    db, repo, other = BACKUP_HOSTS
    api.up(max(host_index(h) for h in BACKUP_HOSTS))
    for h, layer in ((db, "backup"), (other, "backup"), (repo, None)):
        api.reset(h, layer=layer)
    rows = int(size_gb * 2**30 / 8400)  # a 1536-d vector is 6 KiB, toasted in chunks: ~8.4 KB a row on disk
    # pg_basebackup connects for replication as postgres over the socket
    hba = [
        {"type": "local", "database": "replication", "user": "postgres", "method": "peer"},
        {"type": "local", "database": "all", "user": "all"},
    ]
    local = {"ai_names": ["logos"], "hba": hba, "backup": {"enabled": True}}
    hearthdb([db], ["logos"], config=local)
    started = time.perf_counter()
    fill_memories(db, rows)
    out: dict[str, Any] = {"rows": rows, "fill_s": round(time.perf_counter() - started, 1)}
    data = "/var/lib/postgresql/17/main"
    out["data_directory_bytes"] = int(ssh(db, f"du -sb {data} | cut -f1").stdout)
    # the floor copies what a physical backup must: the data directory without its recycled WAL segments
    out["floor tar"] = timed_ssh(db, f"tar -cf /var/tmp/floor.tar -C {data} --exclude=./pg_wal/0* . && sync")
    out["floor untar"] = timed_ssh(
        db, "mkdir -p /var/tmp/untar && tar -xf /var/tmp/floor.tar -C /var/tmp/untar && sync"
    )
    ssh(db, "rm -rf /var/tmp/floor.tar /var/tmp/untar")
    out["pg_basebackup"] = timed_ssh(db, "sudo -u postgres pg_basebackup -D /var/tmp/bb -X stream -c fast && sync")
    ssh(db, "rm -rf /var/tmp/bb")
    out["full backup"] = timed_hearthdb([db], local, "backup.py", "type=full")
    psql_time(db, "logos_db", "UPDATE memories SET content = content || '!' WHERE id % 100 = 0; CHECKPOINT;")
    out["incr after 1% change"] = timed_hearthdb([db], local, "backup.py", "type=incr")
    # before the restore and the drill: reading every row after a restore sets hint bits, whose WAL
    # (full-page images, data checksums are on) the archiver then pushes for minutes
    out["variants"] = backup_variants(db, data, out["floor tar"], out["floor untar"])
    out["restore"] = timed_hearthdb([db], local, "restore.py", f"confirm={db}")
    ssh(db, f"rm -rf {data}.before-restore-*")
    out["drill"] = timed_hearthdb([db], local, "drill.py")
    out["ratio full/floor"] = ratio(out["full backup"], out["floor tar"])
    out["ratio full/pg_basebackup"] = ratio(out["full backup"], out["pg_basebackup"])
    out["ratio restore/floor"] = ratio(out["restore"], out["floor untar"])
    out["ratio incr/full"] = ratio(out["incr after 1% change"], out["full backup"])
    # pgBackRest's own durations (its timestamps), without the command's start-up around them
    stamps = json.loads(ssh(db, f"sudo -u postgres pgbackrest --stanza={db} --output=json info").stdout)[0]["backup"]
    took = {b["type"]: b["timestamp"]["stop"] - b["timestamp"]["start"] for b in stamps}
    out["pgbackrest full s"], out["pgbackrest incr s"] = took.get("full"), took.get("incr")
    print(json.dumps(out), flush=True)  # the one-host figures, before the recovery-point run

    # the recovery point: repository on `repo`, the database host killed while writes commit
    remote = {
        "ai_names": ["logos"],
        "cluster": {"listen_addresses": ["*"]},
        "hba": [
            {"type": "local", "database": "all", "user": "all"},
            {"type": "host", "database": "all", "user": "all", "address": "10.213.7.0/24"},
        ],
        "backup": {"enabled": True, "repository": {"host": repo}},
    }
    hearthdb([db, other, repo], ["logos"], config=remote)  # the repository host, and a stanza there for both
    psql_time(db, "logos_db", f"SET ROLE logos; {WRITES}")
    ssh(db, f"sudo -u postgres pgbackrest --stanza={db} check")  # the table itself is in the repository
    host = next(h for h in api.hosts() if h["name"] == db)
    stop, acked = threading.Event(), []
    thread = threading.Thread(target=writer, args=(host, passwords(["logos"])["logos"], stop, acked))
    thread.start()
    time.sleep(90)  # longer than archive_timeout: the loss is what archiving leaves, not where it started
    api.power_kill(db)
    killed_at = time.time()
    stop.set()
    thread.join(timeout=30)
    out["restore on another host"] = timed_hearthdb(
        [other, repo], remote, "restore.py", f"confirm={other}", f"from={db}"
    )
    last = psql_time(
        other, "logos_db", "SELECT coalesce(max(id), 0) || ',' || coalesce(extract(epoch FROM max(at)), 0) FROM writes"
    )[1]
    restored_id, restored_at = (float(v) for v in last.strip().splitlines()[-1].split(","))
    last_id, last_at = acked[-1]
    out["recovery point"] = {
        "acknowledged rows": last_id,
        "rows lost": int(last_id - restored_id),
        "seconds lost": round(max(0.0, last_at - restored_at), 1),
        "archive_timeout": 60,
        "killed after acknowledging for s": round(killed_at - acked[0][1], 1),
    }
    api.power_on(db)
    show(
        f"backups on {rows} rows of 1536-d memories ({out['data_directory_bytes'] / 2**30:.2f} GiB), seconds",
        ["step", "seconds", "ratio"],
        [
            ["floor: tar of the data directory", out["floor tar"], 1.0],
            ["pg_basebackup", out["pg_basebackup"], ratio(out["pg_basebackup"], out["floor tar"])],
            ["hearthdb backup.py type=full", out["full backup"], out["ratio full/floor"]],
            ["incremental after 1% change", out["incr after 1% change"], out["ratio incr/full"]],
            ["floor: untar", out["floor untar"], 1.0],
            ["hearthdb restore.py (latest)", out["restore"], out["ratio restore/floor"]],
            ["hearthdb drill.py", out["drill"], ratio(out["drill"], out["restore"])],
            ["restore on another host (RPO)", out["restore on another host"], ""],
        ],
    )
    print(f"recovery point: {out['recovery point']}", flush=True)
    labels = ["tar\n(floor)", "pg_base-\nbackup", "full", "incr\n1%", "untar\n(floor)", "restore", "drill"]
    keys = ["floor tar", "pg_basebackup", "full backup", "incr after 1% change", "floor untar", "restore", "drill"]
    colors = [GREY, ORANGE, BLUE, LIGHT_BLUE, GREY, PURPLE, LIGHT_PURPLE]
    rp = out["recovery point"]
    title = (
        f"Backups of {out['data_directory_bytes'] / 2**30:.1f} GiB (1536-d rows): "
        f"full/floor {out['ratio full/floor']}{X}, "
        f"restore/floor {out['ratio restore/floor']}{X}, incr/full {out['ratio incr/full']}{X}\n"
        f"host killed under writes: {rp['rows lost']} rows, {rp['seconds lost']} s lost (archive_timeout 60 s)"
    )
    save("backup", out, lambda ax: bars(ax, labels, [out[k] for k in keys], "seconds", title, colors), size=(9, 4.5))
    return out


FORGE_HOST = os.environ.get("HEARTHDB_BENCH_FORGE", "hdb3")
# Seed 001's performance targets (p95, ms; migration: s): the goal is 10x inside each.
FORGE_TARGETS = {
    "create": 50.0,
    "read_by_id": 10.0,
    "search": 100.0,
    "update": 25.0,
    "cache_hit": 1.0,
    "cache_miss": 5.0,
    "cleanup_1000": 100.0,
    "pool_acquire": 5.0,
    "health_check": 10.0,
    "migrations_s": 30.0,
}
FORGE_OPS = {
    "create": "INSERT INTO memory_objects (tier, content, metadata) VALUES ('WORKING', %s, %s::jsonb) RETURNING id",
    "read_by_id": "SELECT * FROM memory_objects WHERE id = %s",
    "search": "SELECT id, content FROM memory_objects WHERE tier = %s AND metadata @> %s::jsonb "
    "ORDER BY created_at DESC LIMIT 20",
    "update": "UPDATE memory_objects SET content = %s, updated_at = now() WHERE id = %s",
    "cache_hit": "SELECT analysis_result FROM context_analysis_cache WHERE content_hash = %s AND expires_at > now()",
    "cache_miss": "SELECT analysis_result FROM context_analysis_cache WHERE content_hash = %s AND expires_at > now()",
}


def bench_forge(rows: int = 100_000, clients: int = 16, per_client: int = 200) -> dict[str, Any]:
    """Seed 001 (the forge profile) measured the way its application meets its targets: from the controller,
    psycopg over TCP with TLS, a pool of `clients` connections, `clients` concurrent threads; p95 per
    operation and its throughput, on `rows` memory objects."""
    import random

    import psycopg

    up(host_index(FORGE_HOST))
    addr = api.reset(FORGE_HOST, layer="profiles")["address"]
    cfg = yaml.safe_load((ROOT / "examples" / "forge" / "hearthdb.yml").read_text()) | client_access(addr)
    passwords(["prompted_forge", "forge_app"])
    pyinfra([FORGE_HOST], cfg, "-y", env={"HEARTHDB_SCHEMA_DIR": str(ROOT / "examples" / "forge" / "schema")})

    def dsn(role: str) -> str:
        return client_dsn(addr, "prompted_forge", role)

    with psycopg.connect(dsn("prompted_forge"), autocommit=True) as c:
        c.execute(
            "INSERT INTO memory_objects (tier, content, metadata, retention_until) "
            "SELECT (ARRAY['WORKING','EPISODIC','SEMANTIC','SHARED'])[1 + i %% 4], 'memory ' || i, "
            "jsonb_build_object('topic', i %% 499, 'source', 'bench'), "
            "CASE WHEN i %% 10 = 0 THEN now() + interval '1 day' END FROM generate_series(1, %s) i",
            (rows,),
        )
        c.execute(
            "INSERT INTO context_analysis_cache (content_hash, analysis_result, confidence, engine_version, "
            "expires_at) SELECT md5(i::text) || md5((i + 1)::text), '{\"ok\": true}', 0.9, 'v1', now() + "
            "interval '1 hour' FROM generate_series(1, 10000) i"
        )
        c.execute("VACUUM ANALYZE memory_objects, context_analysis_cache")
        ids = [r[0] for r in c.execute("SELECT id::text FROM memory_objects ORDER BY random() LIMIT 5000")]
        # all migrations from empty, as the owner: the bundle's up files in a transaction, rolled back (an
        # index built CONCURRENTLY for a live table is built plainly here: the tables are new and empty)
        up_sql = "\n".join(
            m.up.replace("CONCURRENTLY ", "") for m in load_bundle("forge", ROOT / "examples" / "forge" / "schema")
        )
        migrations = []
        for _ in range(3):
            with c.transaction(force_rollback=True):
                c.execute("CREATE SCHEMA bench_empty; SET LOCAL search_path = bench_empty, public")
                t = time.perf_counter()
                c.execute(up_sql)
                migrations.append(time.perf_counter() - t)

    def args(op: str, rnd: random.Random) -> tuple:
        if op == "create":
            return (f"new {rnd.random()}", json.dumps({"topic": rnd.randrange(500)}))
        if op in ("read_by_id",):
            return (rnd.choice(ids),)
        if op == "search":
            return (
                rnd.choice(["WORKING", "EPISODIC", "SEMANTIC", "SHARED"]),
                json.dumps({"topic": rnd.randrange(500)}),
            )
        if op == "update":
            return (f"updated {rnd.random()}", rnd.choice(ids))
        if op == "cache_hit":
            i = rnd.randrange(1, 10001)
            return (hashlib_md5(str(i)) + hashlib_md5(str(i + 1)),)
        return (secrets.token_hex(32),)

    def query(op: str) -> Callable[[Any, Any], None]:
        def run(conn: Any, rnd: Any) -> None:
            cur = conn.execute(FORGE_OPS[op], args(op, rnd))
            if cur.description:
                cur.fetchall()

        return run

    def health(conn: Any, rnd: Any) -> None:
        conn.execute("SELECT 1").fetchone()

    ops = {op: query(op) for op in FORGE_OPS} | {"health_check": health}
    results: dict[str, Any] = client_p95(dsn("forge_app"), ops, clients, per_client)
    results["pool_acquire"] = pool_acquire(dsn("forge_app"), clients, per_client)
    # cleanup of 1,000 expired cache entries (what the retention job runs), five times
    cleanup = []
    with psycopg.connect(dsn("prompted_forge"), autocommit=True) as c:
        for k in range(5):
            c.execute(
                "INSERT INTO context_analysis_cache (content_hash, analysis_result, confidence, engine_version, "
                "expires_at) SELECT 'x' || %s || '-' || i, '{}', 0.5, 'v1', now() - interval '1 minute' "
                "FROM generate_series(1, 1000) i",
                (k,),
            )
            t = time.perf_counter()
            n = c.execute("DELETE FROM context_analysis_cache WHERE expires_at < now()").rowcount
            cleanup.append((time.perf_counter() - t) * 1000)
            assert n == 1000, n
    results["cleanup_1000"] = {
        "p95_ms": round(max(cleanup), 3),
        "ops_per_s": round(1000 / (statistics.median(cleanup) / 1000)),
    }
    results["migrations_s"] = {"p95_ms": round(max(migrations), 3), "ops_per_s": None}
    table = []
    for op, target in FORGE_TARGETS.items():
        got = results[op]["p95_ms"]
        goal = target / 10
        results[op].update({"target": target, "goal": goal, "met": got <= goal})
        unit = "s" if op == "migrations_s" else "ms"
        table.append(
            [
                op,
                f"{target:g} {unit}",
                f"{goal:g} {unit}",
                f"{got:.3f} {unit}",
                results[op]["ops_per_s"] or "-",
                f"{results[op]['p95_1_client_ms']:.3f} {unit}" if "p95_1_client_ms" in results[op] else "-",
                "yes" if got <= goal else "no",
            ]
        )
    show(
        f"forge: {rows} memory objects, {clients} clients through a pool, TLS over the lab network (p95)",
        ["operation", "seed target", "goal (10x)", f"p95, {clients} clients", "ops/s", "p95, 1 client", "met"],
        table,
    )
    out = {"rows": rows, "clients": clients, "per_client": per_client, "results": results}
    labels = [op for op in FORGE_TARGETS if op != "migrations_s"]
    save(
        "forge",
        out,
        lambda ax: grouped(
            ax,
            labels,
            [
                (f"p95, {clients} clients", [results[o]["p95_ms"] for o in labels], BLUE),
                (
                    "p95, 1 client",
                    [results[o].get("p95_1_client_ms", results[o]["p95_ms"]) for o in labels],
                    LIGHT_BLUE,
                ),
                ("goal (seed target / 10)", [results[o]["goal"] for o in labels], GREY),
            ],
            "ms (log)",
            f"seed 001 on the forge profile: {clients} clients, TLS, {rows // 1000}k objects",
        ),
        size=(11, 4.5),
    )
    return out


def pool_acquire(dsn: str, clients: int, per_client: int) -> dict[str, float]:
    """Taking a connection from the pool and giving it back, by one client and by `clients` at once."""
    from psycopg_pool import ConnectionPool

    out: dict[str, float] = {}
    with ConnectionPool(dsn, min_size=clients, max_size=clients, open=True, kwargs={"autocommit": True}) as pool:
        pool.wait(timeout=30)
        for n in (1, clients):
            lat: list[float] = []

            def worker(_: int, lat: list[float] = lat) -> None:
                for _ in range(per_client):
                    t = time.perf_counter()
                    with pool.connection():
                        lat.append((time.perf_counter() - t) * 1000)

            start = time.perf_counter()
            with ThreadPoolExecutor(n) as ex:
                list(ex.map(worker, range(n)))
            wall = time.perf_counter() - start
            key = "" if n == clients else "_1_client"
            out.update(
                {
                    f"p95{key}_ms": round(statistics.quantiles(lat, n=20)[18], 3),
                    f"ops_per_s{key}": round(len(lat) / wall),
                }
            )
    return out


HA_HOSTS = os.environ.get("HEARTHDB_BENCH_HA", "hdb3 hdb4 hdb5").replace(",", " ").split()
PATRONICTL = "patronictl -c /etc/patroni/17-main.yml"
LAN = [
    {"type": "local", "database": "all", "user": "all", "method": "scram-sha-256"},
    {"type": "host", "database": "all", "user": "all", "address": "10.213.7.0/24"},
]


def patroni_members(hosts: list[str]) -> dict[str, dict[str, Any]]:
    for h in hosts:
        try:
            out = api.ssh(h, f"{PATRONICTL} list -f json", check=False, timeout=8)
        except subprocess.TimeoutExpired:  # a host without power
            continue
        if out.returncode == 0:
            return {m["Member"]: m for m in json.loads(out.stdout)}
    return {}


def wait_members(hosts: list[str], condition: Callable[[dict[str, dict[str, Any]]], bool], timeout: float) -> float:
    t = time.monotonic()
    while not condition(patroni_members(hosts)):
        if time.monotonic() - t > timeout:
            raise SystemExit(f"cluster not as expected within {timeout} s: {patroni_members(hosts)}")
        time.sleep(0.5)
    return time.monotonic() - t


def all_streaming(m: dict[str, dict[str, Any]]) -> bool:
    return (
        len(m) == 3
        and sum(x["Role"] == "Leader" for x in m.values()) == 1
        and all(x["State"] in ("running", "streaming") for x in m.values())
        and any(x["Role"] == "Sync Standby" for x in m.values())
    )


def bench_ha(runs: int = 5, default_runs: int = 3) -> dict[str, Any]:
    """Patroni + etcd on three lab hosts, clients on the controller writing through the endpoint: seconds from
    the leader's power loss to the first acknowledged write (hearthdb's ttl 20 / loop_wait 3, Patroni's
    minimum ttl, beside its defaults 30 / 10), acknowledged commits lost (synchronous mode), and a
    switchover's write gap."""
    from lab.writer import Writer, endpoint_dsn

    up(max(host_index(h) for h in HA_HOSTS))
    addresses = {h: api.reset(h, layer="ha")["address"] for h in HA_HOSTS}
    names = ais(2)
    cfg = {
        "ai_names": names,
        "cluster": {"listen_addresses": ["*"]},
        "hba": LAN,
        "ha": {"enabled": True, "members": HA_HOSTS},
        "pooler": {"enabled": True},
    }
    pw = passwords(["hearthminds", *names, "replicator"])
    bootstrap, _ = pyinfra(HA_HOSTS, cfg, "-y")
    noop, _ = pyinfra(HA_HOSTS, cfg, "-y")
    dsn = endpoint_dsn([addresses[h] for h in HA_HOSTS], 5000, f"{names[0]}_db", names[0], pw[names[0]])
    Writer(dsn).create()

    def failover() -> dict[str, Any]:
        wait_members(HA_HOSTS, all_streaming, 180)
        members = patroni_members(HA_HOSTS)
        old = next(n for n, m in members.items() if m["Role"] == "Leader")
        writer = Writer(dsn).start()
        writer.wait_acks(50)
        killed = time.monotonic()
        api.power_kill(old)
        writer.wait_acks(50, timeout=180)
        writer.stop()
        took = writer.outage_after(killed)
        new = next(n for n, m in patroni_members(HA_HOSTS).items() if m["Role"] == "Leader")
        ids = [i for i, _ in writer.acked]
        with psycopg_connect(addresses[new], names[0], pw[names[0]]) as c:
            have = c.execute("SELECT count(*) FROM drill_writes WHERE id = ANY(%s)", (ids,)).fetchone()[0]
        api.power_on(old)
        rejoin = wait_members(HA_HOSTS, lambda m: m.get(old, {}).get("State") == "streaming", 300)
        timeline = [round(at - killed, 2) for _, at in writer.acked]
        return {
            "seconds": round(took or -1, 2),
            "lost": len(ids) - have,
            "rejoin_s": round(rejoin, 1),
            "acks": timeline,
        }

    def switchover() -> float:
        wait_members(HA_HOSTS, all_streaming, 180)
        members = patroni_members(HA_HOSTS)
        old = next(n for n, m in members.items() if m["Role"] == "Leader")
        to = next(n for n, m in members.items() if m["Role"] == "Sync Standby")
        writer = Writer(dsn).start()
        writer.wait_acks(50)
        t = time.monotonic()
        pyinfra(HA_HOSTS, cfg, "-y", "--data", f"to={to}", entry="switchover.py")
        writer.wait_acks(50, timeout=60)
        writer.stop()
        acks = [at for _, at in writer.acked]
        gap = max(b - a for a, b in itertools.pairwise(acks) if b > t - 1)
        wait_members(HA_HOSTS, lambda m: m.get(old, {}).get("State") == "streaming", 120)
        return round(gap, 2)

    ours = [failover() for _ in range(runs)]
    switch = [switchover() for _ in range(runs)]
    defaults = {**cfg, "ha": {**cfg["ha"], "ttl": 30, "loop_wait": 10, "retry_timeout": 10}}
    pyinfra(HA_HOSTS, defaults, "-y")
    theirs = [failover() for _ in range(default_runs)]
    pyinfra(HA_HOSTS, cfg, "-y")
    med = statistics.median
    data = {
        "bootstrap_s": round(bootstrap, 1),
        "noop_rerun_s": round(noop, 1),
        "failover_s": [r["seconds"] for r in ours],
        "failover_median_s": med(r["seconds"] for r in ours),
        "failover_patroni_defaults_s": [r["seconds"] for r in theirs],
        "failover_patroni_defaults_median_s": med(r["seconds"] for r in theirs),
        "acknowledged_lost": sum(r["lost"] for r in ours + theirs),
        "rejoin_s": [r["rejoin_s"] for r in ours],
        "switchover_write_gap_s": switch,
        "switchover_median_s": med(switch),
        "first_failover_acks": ours[0]["acks"],
    }
    data["defaults_over_ours"] = ratio(data["failover_patroni_defaults_median_s"], data["failover_median_s"])
    show(
        "ha (3 members, writer on the controller through the endpoint)",
        ["", "median s", "runs"],
        [
            ["failover, hearthdb ttl 20", data["failover_median_s"], " ".join(map(str, data["failover_s"]))],
            [
                "failover, Patroni defaults",
                data["failover_patroni_defaults_median_s"],
                " ".join(map(str, data["failover_patroni_defaults_s"])),
            ],
            ["switchover write gap", data["switchover_median_s"], " ".join(map(str, switch))],
        ],
    )

    def plot(ax: Any) -> None:
        acks = data["first_failover_acks"]
        edges = [x / 2 for x in range(int(min(acks) * 2) - 1, int(max(acks) * 2) + 2)]
        ax.hist(acks, bins=edges, color=BLUE)
        ax.axvline(0, color=ORANGE, linestyle="--", label="leader's host power-killed")
        ax.axvline(data["failover_s"][0], color=GREEN, linestyle=":", label="first write on the new leader")
        ax.set_xlabel("seconds from the power loss")
        ax.set_ylabel("commits acknowledged per 0.5 s")
        ax.set_title(f"Writer through the endpoint across a failover ({data['acknowledged_lost']} acknowledged lost)")
        ax.legend(loc="lower right")

    save("ha", {k: v for k, v in data.items()}, plot, size=(8, 4))
    return {k: v for k, v in data.items() if k != "first_failover_acks"}


def bench_drift(sizes: list[int] = SIZES) -> dict[str, Any]:
    """drift.py on a converged host beside the deploy's no-op rerun (medians of three, client-side), at
    each of `sizes` AIs: the report costs what a rerun's planning costs, and says "no drift" (exit 0)."""
    up()
    rows: dict[str, dict[str, float]] = {}
    for n in sizes:
        names = ais(n)
        api.reset(HOST, layer="postgresql")
        hearthdb([HOST], names)
        cfg = {"ai_names": names}
        rows[str(n)] = {
            "drift.py": median(lambda cfg=cfg: pyinfra([HOST], cfg, entry="drift.py")[0]),
            "no-op rerun": median(lambda names=names: hearthdb([HOST], names)),
        }
        rows[str(n)]["drift/rerun"] = ratio(rows[str(n)]["drift.py"], rows[str(n)]["no-op rerun"])
    last, first = str(sizes[-1]), str(sizes[0])
    data: dict[str, Any] = {**rows, f"drift {last}/{first}": ratio(rows[last]["drift.py"], rows[first]["drift.py"])}
    show(
        "drift.py vs the deploy's no-op rerun on a converged host (s, medians of three)",
        ["AIs", "drift.py", "no-op rerun", "drift/rerun"],
        [[n, r["drift.py"], r["no-op rerun"], r["drift/rerun"]] for n, r in rows.items()],
    )

    def plot(ax: Any) -> None:
        xs = range(len(sizes))
        ax.bar([x - 0.2 for x in xs], [rows[str(n)]["drift.py"] for n in sizes], 0.4, color=BLUE, label="drift.py")
        ax.bar(
            [x + 0.2 for x in xs], [rows[str(n)]["no-op rerun"] for n in sizes], 0.4, color=GREY, label="no-op rerun"
        )
        ax.set_xticks(list(xs), [f"{n} AIs" for n in sizes])
        ax.set_ylabel("seconds (client-side)")
        ax.set_title("Drift report beside a no-op deploy, converged host")
        ax.legend()

    save("drift", data, plot)
    return data


def scrape_times(address: str, times: int = 20, port: int = 9187) -> dict[str, float]:
    """GET /metrics from the controller over the lab network, as Prometheus does: median and p95 (ms)."""
    import urllib.request

    seconds = []
    for _ in range(times):
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=30) as r:
            r.read()
        seconds.append(time.perf_counter() - t)
    seconds.sort()
    return {
        "p50_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": round(seconds[int(len(seconds) * 0.95) - 1] * 1000, 1),
    }


def restart_exporter(host: str) -> None:
    """Restart the PostgreSQL exporter and wait until it answers (reset-failed first: restarts in quick
    succession would hit systemd's start limit)."""
    ssh(
        host,
        "systemctl reset-failed prometheus-postgres-exporter; systemctl restart prometheus-postgres-exporter; "
        "for i in $(seq 100); do python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:9187/')\" "
        "2>/dev/null && exit 0; sleep 0.2; done; exit 1",
    )


def bench_monitoring(sizes: list[int] = SIZES) -> dict[str, Any]:
    """The PostgreSQL exporter's scrape as Prometheus sees it (client-side, over the lab network), at each of
    `sizes` AI databases with pg_stat_statements: as hearthdb configures it (one connection; sizes from one
    query, reused for size_interval) in steady state and on the scrape that measures the sizes again, beside
    the same exporter with its stock collectors (the database collector asking database by database)."""
    up()
    rows: dict[str, dict[str, float]] = {}
    for n in sizes:
        names = ais(n)
        address = api.reset(HOST, layer="postgresql")["address"]
        cfg = {
            "ai_names": names,
            "default_extensions": ["vector", "pg_stat_statements"],
            "monitoring": {"enabled": True, "listen_address": "0.0.0.0"},
        }
        pyinfra([HOST], cfg, "-y")
        steady = scrape_times(address)
        misses = []
        for _ in range(3):  # the first scrape after a start measures the sizes
            restart_exporter(HOST)
            misses.append(scrape_times(address, times=1)["p50_ms"])
        ssh(
            HOST,
            "sed -i \"s|^ARGS=.*|ARGS='--web.listen-address=0.0.0.0:9187 --collector.stat_statements'|\" "
            "/etc/default/prometheus-postgres-exporter",
        )
        restart_exporter(HOST)
        stock = scrape_times(address)
        rows[str(n)] = {
            "hearthdb p50_ms": steady["p50_ms"],
            "hearthdb p95_ms": steady["p95_ms"],
            "hearthdb sizes measured_ms": round(statistics.median(misses), 1),
            "stock p50_ms": stock["p50_ms"],
            "stock p95_ms": stock["p95_ms"],
            "stock/hearthdb": ratio(stock["p50_ms"], steady["p50_ms"]),
        }
    show(
        "PostgreSQL exporter scrape, client-side over the lab network (ms; 20 scrapes, sizes: median of 3)",
        ["AIs", "hearthdb p50", "p95", "sizes measured", "stock p50", "p95", "stock/hearthdb"],
        [[n, *r.values()] for n, r in rows.items()],
    )

    def plot(ax: Any) -> None:
        xs = range(len(sizes))
        series = [
            ("hearthdb p50_ms", BLUE, "hearthdb"),
            ("hearthdb sizes measured_ms", "#7fb3d5", "hearthdb, sizes measured"),
            ("stock p50_ms", GREY, "stock collectors"),
        ]
        for i, (key, colour, label) in enumerate(series):
            values = [rows[str(n)][key] for n in sizes]
            ax.bar([x + (i - 1) * 0.27 for x in xs], values, 0.27, color=colour, label=label)
        ax.axhline(500, color="#c0392b", linestyle="--", linewidth=1, label="goal 500 ms")
        ax.set_xticks(list(xs), [f"{n} AIs" for n in sizes])
        y_scale(ax, [rows[str(n)][k] for n in sizes for k, _, _ in series])
        ax.set_ylabel("ms per scrape (client-side)")
        ax.set_title("PostgreSQL exporter scrape time")
        ax.legend()

    data: dict[str, Any] = dict(rows)
    save("monitoring", data, plot)
    return data


def psycopg_connect(addr: str, role: str, password: str, port: int = 5432, db: str | None = None) -> Any:
    import psycopg

    return psycopg.connect(host=addr, port=port, dbname=db or f"{role}_db", user=role, password=password)


POOLER_HOSTS = os.environ.get("HEARTHDB_BENCH_POOLER", "hdb6 hdb7").replace(",", " ").split()


def bench_pooler(seconds: int = 10, clients: int = 8) -> dict[str, Any]:
    """pgbench on a client lab host against a database host: direct (5432) vs through PgBouncer (6432), SCRAM
    both ways; select-only transactions over persistent connections (added p50 latency) and with a new
    connection per transaction (-C, throughput)."""
    db_host, client = POOLER_HOSTS
    up(max(host_index(h) for h in POOLER_HOSTS))
    addr = api.reset(db_host, layer="postgresql")["address"]
    api.reset(client, layer="postgresql")
    names = ais(2)
    cfg = {"ai_names": names, "cluster": {"listen_addresses": ["*"]}, "hba": LAN, "pooler": {"enabled": True}}
    pw = passwords(["hearthminds", *names])
    pyinfra([db_host], cfg, "-y")
    role, db = names[0], f"{names[0]}_db"
    ssh(client, "umask 077; cat > /root/.pgpass", stdin=f"{addr}:*:*:{role}:{pw[role]}\n")
    bench = "/usr/lib/postgresql/17/bin/pgbench"
    ssh(client, f"{bench} -i -s 10 -q -h {addr} -p 5432 -U {role} {db} 2>&1 | tail -1")

    def run(port: int, *extra: str) -> dict[str, float]:
        out = ssh(
            client,
            f"cd /tmp && rm -f pgbench_log.*; {bench} -n -S -M extended -c {clients} -j 2 -T {seconds} -l "
            f"-h {addr} -p {port} -U {role} {' '.join(extra)} {db} | grep -E '^(tps|latency average)'; "
            "cat pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print \"p50\", a[int(NR/2)]}'",
        ).stdout
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
        p50 = float(re.search(r"^p50 (\d+)", out, re.M).group(1)) / 1000  # pgbench logs microseconds
        return {"tps": round(tps, 1), "p50_ms": round(p50, 3)}

    direct, pooled = run(5432), run(6432)
    direct_c, pooled_c = run(5432, "-C"), run(6432, "-C")
    data = {
        "clients": clients,
        "seconds": seconds,
        "persistent": {
            "direct": direct,
            "pooler": pooled,
            "added_p50_ms": round(pooled["p50_ms"] - direct["p50_ms"], 3),
        },
        "connect_per_transaction": {
            "direct": direct_c,
            "pooler": pooled_c,
            "tps_ratio": ratio(pooled_c["tps"], direct_c["tps"]),
        },
    }
    show(
        f"pooler (pgbench -S, {clients} clients, {seconds} s, from {client})",
        ["", "direct tps", "pooler tps", "direct p50 ms", "pooler p50 ms"],
        [
            ["persistent", direct["tps"], pooled["tps"], direct["p50_ms"], pooled["p50_ms"]],
            ["-C (connect each)", direct_c["tps"], pooled_c["tps"], direct_c["p50_ms"], pooled_c["p50_ms"]],
        ],
    )

    def plot(ax: Any) -> None:
        grouped(
            ax,
            ["persistent", "connect per transaction (-C)"],
            [("direct", [direct["tps"], direct_c["tps"]], GREY), ("PgBouncer", [pooled["tps"], pooled_c["tps"]], BLUE)],
            "transactions per second",
            f"pgbench -S, {clients} clients: pooler/direct with -C {data['connect_per_transaction']['tps_ratio']}{X}",
        )

    save("pooler", data, plot)
    return data


def hashlib_md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


BENCHES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "converge": lambda o: bench_converge(o.after, o.before, not o.no_peers),
    "noop": lambda o: bench_noop(o.after, o.before, not o.no_peers, o.sizes),
    "fleet": lambda o: bench_fleet(o.hosts),
    "vector": lambda o: bench_vector(),
    "memory": lambda o: bench_memory(),
    "backup": lambda o: bench_backup(),
    "forge": lambda o: bench_forge(),
    "ha": lambda o: bench_ha(),
    "pooler": lambda o: bench_pooler(),
    "drift": lambda o: bench_drift(o.sizes),
    "monitoring": lambda o: bench_monitoring(o.sizes),
}
BEFORE_AFTER = ("converge", "noop")


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of AI counts: {text!r}") from None
    if sizes[0] < 1:
        raise argparse.ArgumentTypeError("AI counts start at 1")
    return sizes


def hosts_arg(text: str) -> list[str]:
    hosts = text.replace(",", " ").split()
    try:
        for h in hosts:
            host_index(h)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return hosts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benches", nargs="*", metavar="BENCH", help=f"{', '.join(BENCHES)} or all (the default)")
    parser.add_argument("--before", metavar="REV", help="converge, noop: also run hearthdb at git revision REV")
    parser.add_argument("--no-peers", action="store_true", help="converge: no built-ins, Ansible; noop: no floor too")
    parser.add_argument("--sizes", type=sizes_arg, default=SIZES, help="noop, drift, monitoring: AI counts (2,20,200)")
    parser.add_argument("--hosts", type=hosts_arg, default=FLEET, help=f"fleet: its hosts ({','.join(FLEET)})")
    opts = parser.parse_args()
    names = opts.benches if opts.benches not in ([], ["all"]) else list(BENCHES)
    if unknown := [n for n in names if n not in BENCHES]:
        parser.error(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHES)}, all)")
    if opts.before and not set(BEFORE_AFTER) & set(names):
        parser.error(f"--before applies to {' and '.join(BEFORE_AFTER)} only")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # atexit then removes WORK
    opts.after = this_tree()
    opts.before = worktree(opts.before) if opts.before else None
    for name in names:
        print(f"== {name}", flush=True)
        print(json.dumps(BENCHES[name](opts), indent=2), flush=True)


if __name__ == "__main__":
    main()
