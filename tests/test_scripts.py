"""scripts/forward_signals.sh: a signal to a script reaches the command it waits for, and the
script stops there with that command's status instead of going on to its next stage."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import signal, sys, time
def stop(signum, frame):
    open(sys.argv[1], "w").write(f"got {signum}")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
open(sys.argv[2], "w").write("ready")
time.sleep(60)
"""


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "stage.sh"
    script.write_text(
        "set -euo pipefail\n"
        f". {REPO / 'scripts' / 'forward_signals.sh'}\n"
        f'run_forwarding_signals {sys.executable} -c "$CHILD" {tmp_path / "got"} {tmp_path / "ready"}\n'
        f"echo next stage > {tmp_path / 'next'}\n"
    )
    return script


def test_sigterm_to_the_script_reaches_the_command_and_stops_the_script(tmp_path: Path) -> None:
    proc = subprocess.Popen(["bash", str(_script(tmp_path))], env={"CHILD": CHILD, "PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the command did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert (tmp_path / "got").read_text() == f"got {int(signal.SIGTERM)}"
    assert not (tmp_path / "next").exists()


def test_without_a_signal_the_script_goes_on_with_the_command_status(tmp_path: Path) -> None:
    script = tmp_path / "ok.sh"
    script.write_text(
        f". {REPO / 'scripts' / 'forward_signals.sh'}\n"
        "run_forwarding_signals bash -c 'exit 3'; echo \"status $?\"\n"
        'run_forwarding_signals true; echo "status $?"\n'
    )
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30).stdout
    assert out.split("\n")[:2] == ["status 3", "status 0"]
