"""`hearthdb-prometheus`: write the Prometheus configuration and alert rules for the hosts of the inventory
and the exporters hearthdb.yml declares (README, "Monitoring"). Reads the same HEARTHDB_CONFIG and
HEARTHDB_INVENTORY a deploy reads; touches no host.

    hearthdb-prometheus [--out DIR]     # DIR/prometheus.yml and DIR/hearthdb-rules.yml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import load_config
from .errors import ConfigError
from .inventory import inventory_hosts
from .monitoring import RULES_FILE, alert_rules, exporters, scrape_config


def files(out: Path) -> list[Path]:
    cfg = load_config()
    if not cfg.monitoring.enabled:
        raise ConfigError("monitoring.enabled: false; the exporters must be declared to be scraped")
    skip = {cfg.backup.repository.host} if cfg.backup.enabled else set()
    if cfg.ha.enabled:
        skip |= set(cfg.ha.etcd_members) - set(cfg.ha.members)
    hosts = {name: data["ssh_hostname"] for name, data in inventory_hosts() if name not in skip}
    jobs = exporters(cfg.monitoring, cfg.pooler.enabled, cfg.backup.enabled)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        out / "prometheus.yml": scrape_config(cfg.monitoring, hosts, jobs),
        out / RULES_FILE: alert_rules(cfg.monitoring, jobs, cfg.ha.enabled),
    }
    for path, text in written.items():
        path.write_text(text)
    return list(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearthdb-prometheus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".hearthdb/prometheus"), help="folder to write into")
    args = parser.parse_args(argv)
    try:
        for path in files(args.out):
            print(path)
    except ConfigError as e:
        print(f"hearthdb-prometheus: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
