"""constraints.txt pins one exact version of every dependency pyproject.toml declares, inside its
declared range, so that scripts/setup_env.sh installs the same environment on every machine."""

from __future__ import annotations

from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and "+" not in version, f"{line!r}: pin one public version with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _pins()
    for text in requires("gradvac_ds"):  # the installed metadata: pyproject's core and extras
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "gradvac-ds":
            continue  # the package's own extras
        assert name in pins, f"{requirement.name} is declared but not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]}: {text!r}"


def test_setup_installs_with_the_constraints():
    setup = (REPO / "scripts" / "setup_env.sh").read_text()
    installs = [line for line in setup.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
