"""hearthdb-lab: command line of the test-host lab."""

from __future__ import annotations

import argparse
import os
import sys

from . import api, config, layers, preflight
from .shell import LabError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hearthdb-lab",
        description="Disposable Debian 13 test hosts (systemd-nspawn on a private bridge) for hearthdb. Run as root.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("up", help="start hosts hdb1..hdbN (only the missing ones)")
    s.add_argument("n", nargs="?", type=int, default=1, help="number of hosts (default 1)")
    s.add_argument(
        "--layer",
        choices=sorted(layers.LAYERS),
        help="stack a pre-built layer under the new hosts (postgresql: packages, no cluster)",
    )
    s = sub.add_parser("add", help="start one host beside the others (--layer vm: a QEMU VM, its own kernel)")
    s.add_argument("host")
    s.add_argument("--layer", choices=sorted(layers.LAYERS), help="its layer (vm: a VM booting Debian's kernel)")
    sub.add_parser("remove", help="stop one host and forget it").add_argument("host")
    sub.add_parser("down", help="stop every host, the bridge and the apt proxy")
    s = sub.add_parser("reset", help="recreate one host from its cached layers (fresh upper)")
    s.add_argument("host")
    s.add_argument(
        "--layer",
        choices=[*sorted(layers.LAYERS), "none"],
        help="switch the host to this layer (none = plain base); default: keep its layer",
    )
    for command, text in (
        ("kill", "power-kill a host (no shutdown; its disk survives)"),
        ("start", "boot a power-killed host again on its disk"),
        ("isolate", "cut a host off the lab network (it keeps running)"),
        ("rejoin", "put an isolated host back on the lab network"),
    ):
        sub.add_parser(command, help=text).add_argument("host")
    sub.add_parser("status", help="table of hosts and the apt proxy")
    s = sub.add_parser("ssh", help="ssh into a host with the lab's ssh config")
    s.add_argument("host")
    s.add_argument("cmd", nargs=argparse.REMAINDER, help="command to run (default: a shell)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        preflight.require_root()
        if args.command == "up":
            api.up(args.n, layer=args.layer)
        elif args.command == "add":
            api.add(args.host, layer=args.layer)
        elif args.command == "remove":
            api.remove(args.host)
        elif args.command == "down":
            api.down()
        elif args.command == "reset":
            if args.layer is None:
                api.reset(args.host)
            else:
                api.reset(args.host, layer=None if args.layer == "none" else args.layer)
        elif args.command == "kill":
            api.power_kill(args.host)
        elif args.command == "start":
            api.power_on(args.host)
        elif args.command in ("isolate", "rejoin"):
            api.isolate(args.host, args.command == "isolate")
        elif args.command == "status":
            _print_status()
        elif args.command == "ssh":
            if args.host not in {h["name"] for h in api.hosts()}:
                raise LabError(f"{args.host} is not up (see `hearthdb-lab status`)")
            cmd = ["ssh", "-F", str(api.ssh_config_path()), args.host, *args.cmd]
            sys.stdout.flush()
            os.execvp("ssh", cmd)
    except (LabError, ValueError) as e:
        print(f"hearthdb-lab: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _print_status() -> None:
    st = api.status()
    rows = st["hosts"]
    if rows:
        print(f"{'HOST':<7}{'ADDRESS':<14}{'PID':>8}  {'RUNNING':<8}{'SSH':<5}{'PSS MiB':>8}  LAYER")
        for r in rows:
            print(
                f"{r['name']:<7}{r['address']:<14}{r['pid']:>8}  {'yes' if r['alive'] else 'NO':<8}"
                f"{'ok' if r['ssh'] else 'NO':<5}{r['mem_mib']:>8.1f}  {r['layer'] or '-'}"
            )
    else:
        print("no hosts up")
    proxy = st["proxy"]
    if st["proxy_alive"] and proxy:
        print(f"apt proxy: pid {proxy['pid']} on 127.0.0.1, {config.BRIDGE_ADDRESS}:{config.PROXY_PORT}")
    else:
        print("apt proxy: not running")
    print(
        f"bridge {config.BRIDGE}: {'up' if st['bridge'] else 'absent'}; "
        f"base image: {'cached' if st['base'] else 'not built'}; "
        + ", ".join(f"layer {n}: {'cached' if ok else 'not built'}" for n, ok in st["layers"].items())
    )


if __name__ == "__main__":
    sys.exit(main())
