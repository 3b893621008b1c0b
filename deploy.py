"""Converge every host of the inventory to the state declared in hearthdb.yml.

pyinfra inventory.py deploy.py          # converge
pyinfra inventory.py deploy.py --dry    # preview: what would change, with the SQL (secrets masked)
"""

from pyinfra import host

from operations.deploy import converge

converge(host.data.hearthdb, host.data.hearthdb_passwords)
