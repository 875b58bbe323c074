"""The planner's one error type."""

from gradvac_ds.errors import ConfigError


class PlanError(ConfigError):
    """An input to the planner is missing, malformed or out of range; the message names the field."""
