"""The folder a training run writes into: one run at a time, never a half-written pipeline, plain errors.

    with RunFolder("runs/time_sum") as folder:   # refuses weights/, takes the lock, clears leftovers
        ...
        folder.save_pipeline(pipeline)           # swapped in file by file, model_index.json last

- Shipped weights are never written by accident: a folder inside ``weights/``, or one holding a
  weights card (``README.md``) beside a model, is refused unless ``overwrite_shipped=True``.
- ``.lock`` holds the PID of the run writing the folder; a second run stops with a message. A lock
  left by a dead process (a killed run) is taken over.
- The pipeline is written to ``.pipeline.tmp/`` first, then each file is renamed into place (an
  atomic step) and ``model_index.json`` comes last, so a kill at any moment leaves a loadable pipeline.
  Leftover ``*.tmp`` files and folders are removed when the next run starts.
- A full disk, a read-only file system or a missing permission is reported in words, naming the folder.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
from pathlib import Path

from . import WEIGHTS_DIR

LOCK = ".lock"
STAGING = ".pipeline.tmp"
CARD = "README.md"  # what `python -m condiff cards` writes beside a shipped model


class RunFolderError(OSError):
    """A run folder that cannot be used: shipped weights, another run's lock, a full or read-only disk."""


def describe_os_error(error: BaseException, folder: Path, doing: str) -> str | None:
    """A full disk, a read-only file system or a missing permission, in words; ``None`` for other errors."""
    code = getattr(error, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or (isinstance(error, RuntimeError) and _disk_full(folder)):
        # torch.save reports a full disk as a RuntimeError ("unexpected pos ..."): ask the disk itself
        return f"could not {doing}: the disk holding {folder} is full (no space left); free some space"
    if code == errno.EROFS:
        return f"could not {doing}: {folder} is on a read-only file system; choose another --out"
    if code in (errno.EACCES, errno.EPERM):
        return f"could not {doing}: no permission to write in {folder}; choose another --out or fix its permissions"
    return None


def _disk_full(folder: Path, margin: int = 16 * 2**20) -> bool:
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def shipped_reason(folder: Path) -> str | None:
    """Why ``folder`` holds shipped weights (inside ``weights/`` or a model with its card), else ``None``."""
    folder = folder.resolve()
    weights = WEIGHTS_DIR.resolve()
    if folder == weights or weights in folder.parents:
        return f"{folder} is inside the repository's {weights.name}/ folder, which holds the shipped weights"
    has_model = (folder / "model_index.json").is_file() or (folder / "config.json").is_file()
    if has_model and (folder / CARD).is_file():
        return f"{folder} holds a shipped model (a model with its card, {CARD})"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class RunFolder:
    """Guard, lock and atomic pipeline writes for ``output_dir`` (a context manager; see the module doc)."""

    def __init__(self, output_dir: str | Path, overwrite_shipped: bool = False, lock: bool = True):
        """``lock=False`` for the other processes of a multi-process run (the main one locks and cleans)."""
        self.path = Path(output_dir)
        self.overwrite_shipped, self.use_lock, self.locked = overwrite_shipped, lock, False

    # -- start and end ------------------------------------------------------------------------

    def __enter__(self) -> RunFolder:
        reason = shipped_reason(self.path)
        if reason and not self.overwrite_shipped:
            raise RunFolderError(f"refusing to train into {self.path}: {reason}. Train into runs/NAME and ship "
                                 "with `python -m condiff cards --ship NAME=runs/NAME`, or pass "
                                 "--overwrite-shipped to replace those weights on purpose")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.use_lock:  # the main process: other processes of the run neither lock nor clean
                self._lock()
                self.clean()
        except RunFolderError:
            raise
        except OSError as error:
            raise RunFolderError(describe_os_error(error, self.path, "start the run") or
                                 f"could not use {self.path} as the run folder: {error}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.locked:
            self._unlock()

    def _lock(self) -> None:
        lock = self.path / LOCK
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._lock_owner(lock)
                if owner is not None:
                    raise RunFolderError(
                        f"another training run (PID {owner['pid']} on {owner['host']}) is writing {self.path}; "
                        f"wait for it to end, stop it, or choose another --out (if no run is going, delete "
                        f"{lock})") from None
                lock.unlink(missing_ok=True)  # a dead run's lock: take it over
                continue
            with os.fdopen(fd, "w") as f:
                f.write(text)
            self.locked = True
            return
        raise RunFolderError(f"another run took the lock on {self.path} at the same moment; try again")

    @staticmethod
    def _lock_owner(lock: Path) -> dict | None:
        """The live run holding ``lock``, or ``None`` when it is stale (dead PID) or unreadable."""
        try:
            owner = json.loads(lock.read_text())
            pid, host = int(owner["pid"]), str(owner["host"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # empty or half-written by a run killed while locking
        if host != socket.gethostname():
            return {"pid": pid, "host": host}  # cannot tell from here: assume alive
        return {"pid": pid, "host": host} if pid != os.getpid() and _pid_alive(pid) else None

    def _unlock(self) -> None:
        lock = self.path / LOCK
        try:
            if json.loads(lock.read_text()).get("pid") == os.getpid():
                lock.unlink()
        except (OSError, ValueError):
            pass
        self.locked = False

    def clean(self) -> None:
        """Remove what a killed run left half-written: ``*.tmp`` files and folders, here and one level down."""
        for item in [*self.path.glob("*.tmp"), *self.path.glob("*/*.tmp"), *self.path.glob("snapshots/.*.tmp")]:
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)

    # -- writing ------------------------------------------------------------------------------

    def save_pipeline(self, pipeline) -> None:
        """``pipeline.save_pretrained`` into the folder so that a kill at any moment leaves a loadable pipeline.

        Written whole into ``.pipeline.tmp/``, then each file renamed over its old copy (components
        first, ``model_index.json`` last). When the new pipeline has other components or configs than
        the old one, ``model_index.json`` is removed first: the folder is then briefly not a pipeline,
        rather than a mix of two.
        """
        staging = self.path / STAGING
        shutil.rmtree(staging, ignore_errors=True)
        pipeline.save_pretrained(staging)
        new_files = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
        index = Path("model_index.json")
        if not self._same_layout(staging, new_files):
            (self.path / index).unlink(missing_ok=True)
        for name in [f for f in new_files if f != index] + [index]:
            source, target = staging / name, self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(source, "rb") as f:
                os.fsync(f.fileno())  # on disk before it replaces the old copy
            os.replace(source, target)
        self._drop_stale_components(json.loads((self.path / index).read_text()), new_files)
        shutil.rmtree(staging, ignore_errors=True)

    def _same_layout(self, staging: Path, new_files: list[Path]) -> bool:
        """The old pipeline has the same files and configs, so old and new files can mix while swapping."""
        for name in new_files:
            old = self.path / name
            if not old.is_file():
                return False
            if name.suffix == ".json" and name.name != "model_index.json" and \
                    old.read_bytes() != (staging / name).read_bytes():
                return False
        return True

    def _drop_stale_components(self, index: dict, new_files: list[Path]) -> None:
        """Files the old pipeline had in its component folders and the new one has not (after the swap)."""
        keep = set(new_files)
        for component in {f.parts[0] for f in new_files if len(f.parts) > 1}:
            for old in (self.path / component).rglob("*"):
                if old.is_file() and old.relative_to(self.path) not in keep:
                    old.unlink()
        for name, value in index.items():
            if isinstance(value, list) and value[0] is None and (self.path / name).is_dir():
                shutil.rmtree(self.path / name)  # a component the new pipeline does not have
