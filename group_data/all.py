"""Loads hearthdb.yml over the documented defaults (group_data/defaults.yml) and validates it.

Runs while pyinfra builds the inventory, before any connection: bad input stops the run here with
one line per problem, naming the key path and the reason.
"""

from operations.config import load_config

hearthdb = load_config()
