"""Errors hearthdb raises to the user: one line each, naming the key or the object and the reason."""

import sys

# Under pyinfra (a deploy, group_data) its error base class makes the CLI print the one line without a
# traceback; anywhere else (the pure planners imported alone) a plain Exception, so nothing here pulls
# pyinfra in. pyinfra is always imported before hearthdb's modules when it runs them.
_pyinfra_errors = sys.modules.get("pyinfra.api.exceptions")
_Base: type[Exception] = getattr(_pyinfra_errors, "PyinfraError", Exception)


class ConfigError(_Base):
    """hearthdb.yml or the inventory is invalid; raised before any host is touched."""


class ClusterMismatch(_Base):
    """An existing cluster's fixed properties differ from the declared ones (never re-initialised)."""


class PlanError(_Base):
    """The declared state cannot be reached from the host's state without a choice the user must make."""
