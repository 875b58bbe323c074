"""Hypothesis profiles: ``ci`` (used by scripts/test.sh) replays a fixed set of examples so that a
green run stays green; plain ``pytest`` keeps exploring new ones."""

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
