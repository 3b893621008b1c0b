"""Converge every host of the inventory to the state declared in hearthdb.yml, migrate schemas, then
validate (boolean checks recorded in eng_patterns; any false check fails the run).

    pyinfra inventory.py deploy.py                           # converge, migrate to head, validate
    pyinfra inventory.py deploy.py --dry                     # preview: what would change, with the SQL
    pyinfra inventory.py deploy.py --data migrate_to=hm:0    # move bundle hm to version 0 (down files)
"""

from pyinfra import host

from operations.deploy import converge, validate

args = (host.data.hearthdb, host.data.hearthdb_passwords, host.data.get("migrate_to"))
converge(*args)
validate(*args)
