"""DeepSpeed ops compiled just in time at run start: build them ahead, and catch a stale build lock.

On CPU, ``deepspeed.init_distributed`` compiles its shared-memory collectives
(``deepspeed_shm_comm``) on first use, under ``<torch extensions dir>/<op>/``. torch guards that
build with a ``lock`` file in that folder, which the building process creates and keeps open until
it removes it: a process killed while compiling leaves the lock behind, and every later run waits
on it forever, silently. :func:`check_build_locks` runs before the process group starts and fails
with the lock's path when the lock's owner is gone: no process holds the file open
(:func:`lock_holders`, from ``/proc/<pid>/fd``). A build in progress, however slow, has its owner
alive and is left to torch. Where ``/proc`` cannot be read (not Linux), or some processes' file
tables are hidden from this user, a lock counts as stale only when it is also older than
:data:`STALE_AFTER_S`. A build that ends closes the lock and then removes it, so a lock seen without
a holder is looked at again after :data:`RECHECK_S`: only the same file (inode and mtime), still
there and still without a holder, is stale. (Without that second look, a run starting while
another rank loaded the cached op in a few milliseconds could catch the lock between the close and
the remove.) ``python -m gradvac_ds.training.jit_ops`` (run by ``scripts/setup_env.sh``)
compiles the ops at setup, so that no run compiles them at all.

Only the ops this accelerator builds just in time are concerned (none on CUDA: NCCL needs none).

The shm op also leaves memory behind: at init, when all ranks are on one node (``LOCAL_SIZE`` =
world size, as the deepspeed launcher sets it), each rank creates the shared-memory file
``/dev/shm/deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<rank>`` (66 MB) and maps its
peers'; DeepSpeed never removes them, so every run, finished or killed, kept 66 MB of RAM per rank
in ``/dev/shm`` until reboot (a day of tests on this box filled 18 GB and got a run OOM-killed).
:func:`unlink_shm_buffer`, called once every rank has mapped its peers', removes this rank's name:
the mappings stay valid until the processes end, and nothing is left behind when they do.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import deepspeed
import deepspeed.ops

from gradvac_ds.training.errors import RunStopped

JIT_BUILDERS = ("ShareMemCommBuilder",)
"""DeepSpeed op builders that a training run loads: ``deepspeed.comm`` loads the shm op at init."""
STALE_AFTER_S = 600.0
"""Where the owner cannot be told (no ``/proc``, hidden processes): a lock this old with no visible
holder is stale; the op compiles in well under a minute on 2 CPU cores."""
RECHECK_S = 1.0
"""Seconds between the two looks at a lock without a holder."""
PROC = Path("/proc")
SHM_DIR = Path("/dev/shm")
SHM_BUFFER = "deepspeed_allreduce_buffer"
"""The name stem of the shm op's per-rank buffers (``SHM_BUFFER_NAME`` in DeepSpeed's shm.cpp)."""


class StaleBuildLock(RunStopped):
    """A DeepSpeed op's build lock outlived the build that made it."""


def _jit_builders() -> list:
    """Builders of this accelerator among :data:`JIT_BUILDERS` that are compiled at run time (not
    pre-installed, and compatible with this machine, as ``deepspeed.comm`` decides)."""
    from deepspeed.git_version_info import installed_ops

    builders = []
    for class_name in JIT_BUILDERS:
        builder = deepspeed.get_accelerator().create_op_builder(class_name)
        if builder is None or installed_ops.get(builder.NAME, False):
            continue
        if deepspeed.ops.__compatible_ops__.get(builder.NAME, False):
            builders.append(builder)
    return builders


def _build_dir(name: str) -> Path:
    """Where torch builds extension ``name`` (``TORCH_EXTENSIONS_DIR`` or its default, per Python and
    CUDA version); torch's own function, imported here as it pulls in setuptools."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(name, verbose=False))


def build_lock_paths() -> list[Path]:
    """The torch build-lock path of each op this run compiles just in time (whether it exists or not)."""
    return [_build_dir(builder.NAME) / "lock" for builder in _jit_builders()]


def lock_holders(lock: Path) -> tuple[list[int], bool] | None:
    """The PIDs of the processes that hold ``lock`` open, and whether every process's file table
    could be read; None when ``/proc`` is not there."""
    if not (PROC / "self" / "fd").is_dir():
        return None
    target, holders, complete = os.path.realpath(lock), [], True
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except PermissionError:
            complete = False
            continue
        except FileNotFoundError:  # the process ended meanwhile
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    holders.append(int(entry.name))
                    break
            except OSError:
                continue
    return holders, complete


def _stale(lock: Path, stale_after_s: float) -> tuple[tuple[int, int], float, str] | None:
    """((inode, mtime ns), age in s, why) when ``lock`` exists and looks stale now, else None."""
    try:
        stat = lock.stat()
    except FileNotFoundError:
        return None
    age = time.time() - stat.st_mtime
    seen = lock_holders(lock)
    if seen is not None and seen[0]:
        return None  # a build in progress: its owner still holds the lock
    owner_known_gone = seen is not None and seen[1]
    if not (owner_known_gone or age > stale_after_s):
        return None
    how = "no process holds it" if seen is not None else "this system does not show its holder"
    return (stat.st_ino, stat.st_mtime_ns), age, how


def check_build_locks(stale_after_s: float = STALE_AFTER_S) -> None:
    """Fail when a build lock's owner is gone (see the module docstring; ``stale_after_s`` is the
    age that decides where the owner cannot be seen).

    Raises:
        StaleBuildLock: naming the lock file, its age, and what to do.
    """
    for lock in build_lock_paths():
        verdict = _stale(lock, stale_after_s)
        if verdict is None:
            continue
        identity = verdict[0]
        time.sleep(RECHECK_S)
        again = _stale(lock, stale_after_s)
        if again is not None and again[0] == identity:
            _, age, how = again
            raise StaleBuildLock(
                f"{lock} is {age:.0f} s old and {how}: a DeepSpeed op build was killed and left its "
                f"lock behind, and torch would wait on it forever. Delete it (rm {lock}), or prebuild "
                f"the ops with `python -m gradvac_ds.training.jit_ops`"
            )


def shm_buffer_path(rank: int) -> Path:
    """The shared-memory file the shm op creates for global ``rank`` at init (it may not exist:
    other accelerators, ranks on several nodes, or a launcher that sets no ``LOCAL_SIZE``)."""
    addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    return SHM_DIR / f"{SHM_BUFFER}_{os.getuid()}_{addr}_{port}_{rank}"


def unlink_shm_buffer(rank: int) -> bool:
    """Remove this rank's shm-op buffer name; True if there was one. Call it only after a barrier
    that follows ``deepspeed.init_distributed`` on every rank: a peer still opening the buffer by
    name would wait for it forever."""
    try:
        shm_buffer_path(rank).unlink()
    except FileNotFoundError:
        return False
    return True


def build() -> list[Path]:
    """Compile (or load the cached build of) every op this run would compile just in time; returns
    their build folders."""
    check_build_locks()
    folders = []
    for builder in _jit_builders():
        builder.load(verbose=False)
        folders.append(_build_dir(builder.NAME))
    return folders


if __name__ == "__main__":
    for folder in build():
        print(f"built {folder}")
