"""Errors hearthdb raises to the user: one line each, naming the key or the object and the reason."""

from pyinfra.api.exceptions import PyinfraError


class ConfigError(PyinfraError):
    """hearthdb.yml or the inventory is invalid; raised before any host is touched."""


class ClusterMismatch(PyinfraError):
    """An existing cluster's fixed properties differ from the declared ones (never re-initialised)."""


class PlanError(PyinfraError):
    """The declared state cannot be reached from the host's state without a choice the user must make."""
