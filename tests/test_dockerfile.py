"""docker/Dockerfile keeps the base image's CUDA torch and installs through pyproject.toml only.

hadolint is not a project dependency; these checks hold the properties a linter would not see.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest))
    return pairs


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return _instructions()


def test_base_image_is_a_pinned_cuda_pytorch_devel_image(instructions):
    (default,) = [
        rest for keyword, rest in instructions if keyword == "ARG" and rest.startswith("BASE_IMAGE=")
    ]
    assert re.fullmatch(r"BASE_IMAGE=pytorch/pytorch:2\.\d+\.\d+-cuda12\.\d+-cudnn9-devel", default)
    assert ("FROM", "${BASE_IMAGE}") in instructions


def test_install_step_is_the_repository_with_torch_pinned(instructions):
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    (install,) = [run for run in runs if "pip install" in run]
    editable = r'pip install --no-cache-dir --no-build-isolation -e "\.\[train,analysis\]"(\s|$)'
    assert re.search(editable, install)
    assert "torch=={torch.__version__}" in install and '> "${PIP_CONSTRAINT}"' in install
    assert install.index("PIP_CONSTRAINT") < install.index("pip install")
    envs = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "PIP_CONSTRAINT=/etc/pip-constraints.txt" in envs
    for run in runs:  # nothing installs another torch or a second list of requirements
        assert not re.search(r"pip install[^&]*\btorch\b", run)
        assert "requirements" not in run


def test_ssh_for_the_launcher(instructions):
    assert any(
        "openssh-server" in rest and "pdsh" in rest for keyword, rest in instructions if keyword == "RUN"
    )
    assert ("ENTRYPOINT", '["/usr/local/bin/gradvac-entrypoint"]') in instructions
    sshd = (DOCKER / "sshd_config").read_text()
    assert "PasswordAuthentication no" in sshd and "Port 2222" in sshd
    assert "Port 2222" in (DOCKER / "ssh_config").read_text()


def test_the_image_holds_no_ssh_host_keys(instructions):
    """openssh-server's install generates host keys: the same RUN deletes them, nothing later makes
    new ones, and each container generates its own before it starts sshd."""
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    (install,) = [run for run in runs if "openssh-server" in run]
    assert re.search(r"rm -f /etc/ssh/ssh_host_\*(\s|$)", install)
    assert install.index("apt-get install") < install.index("rm -f /etc/ssh/ssh_host_*")
    assert not any("ssh-keygen" in run for run in runs)
    entrypoint = [line.split("#")[0].strip() for line in (DOCKER / "entrypoint.sh").read_text().splitlines()]
    keygen = entrypoint.index("ssh-keygen -A >/dev/null")
    assert keygen < entrypoint.index("/usr/sbin/sshd")
