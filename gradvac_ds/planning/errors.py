"""The planner's one error type."""


class PlanError(ValueError):
    """An input to the planner is missing, malformed or out of range; the message names the field."""
