"""This project's hosts: listed in hosts.yml beside this file, in hearthdb's format (or the file named by
HEARTHDB_INVENTORY). Any pyinfra inventory works as well, e.g. `db = ["db1.example.org"]`."""

import os
from pathlib import Path

from operations.inventory import inventory_hosts

os.environ.setdefault("HEARTHDB_INVENTORY", str(Path(__file__).with_name("hosts.yml")))
db = inventory_hosts()
