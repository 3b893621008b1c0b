"""Validate every host without changing anything but the recorded results.

pyinfra inventory.py validate.py
"""

from pyinfra import host

from operations.deploy import validate

validate(host.data.hearthdb, host.data.hearthdb_passwords, host.data.get("migrate_to"))
