"""A user's own deploy: hearthdb's deploy functions, and an operation of this project's own.

pyinfra inventory.py deploy.py          # from this folder
"""

from pyinfra import host
from pyinfra.operations import files

from operations.deploy import converge, validate

converge(host.data.hearthdb)
files.line(
    name="message of the day",
    path="/etc/motd",
    line="This host keeps AI memory: managed by hearthdb, do not change it by hand.",
    _sudo=host.data.get("_sudo", False),
)
validate(host.data.hearthdb)
