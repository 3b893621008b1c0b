"""Loads hearthdb.yml over the documented defaults (group_data/defaults.yml), validates it and
resolves role passwords (environment, or the controller-side secrets file).

Runs while pyinfra builds the inventory, before any connection: bad input stops the run here with
one line per problem, naming the key path and the reason.
"""

from operations.config import load_config
from operations.secrets import resolve_passwords

hearthdb = load_config()
hearthdb_passwords = resolve_passwords(hearthdb)  # role -> HiddenValue: masked wherever printed
