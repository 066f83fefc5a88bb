"""The folder a training run writes into: one run at a time, never a half-written file, plain errors.

    with RunFolder("runs/time_sum") as folder:   # refuses weights/, takes the lock, clears leftovers
        ...
        folder.save_checkpoint(accelerator, step)  # checkpoint-NNNNNN/, renamed into place whole
        folder.save_pipeline(pipeline)           # swapped in file by file, model_index.json last

- Shipped weights are never written by accident: a folder inside ``weights/``, or one holding a
  weights card (``README.md``) beside a model, is refused unless ``overwrite_shipped=True``.
- ``.lock`` is an OS lock (``filelock.FileLock``: ``flock`` on Linux and macOS) held while a run
  writes the folder; a second run stops with a message. The kernel frees it when the process ends,
  killed or not, so a killed run's folder can be trained again at once (the empty file stays).
- The pipeline is written to ``.pipeline.tmp/`` first, then each file is renamed into place (an
  atomic step) and ``model_index.json`` comes last, so a kill at any moment leaves a loadable pipeline.
  Checkpoints, records and snapshots are written under a ``.tmp`` name and renamed too. The next run
  removes what a killed one left under those names (``TEMPORARY``), and nothing else.
- Only a run folder is trained into: a new or empty folder, or one a run made (``is_run``). A folder
  holding other files, or a file, is refused, so no user file is ever deleted or mixed into a run.
  ``set_aside`` moves a whole run out of the way (``train --fresh``): whenever a kill lands, the folder
  holds either the old run or the new one, never records of one beside the weights of the other.
- A full disk, a read-only file system or a missing permission is reported in words, naming the folder.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from filelock import FileLock, Timeout

from . import WEIGHTS_DIR

LOCK = ".lock"
STAGING = ".pipeline.tmp"
INDEX = Path("model_index.json")  # a pipeline's table of contents: written last, so it marks a whole one
CARD = "README.md"  # what `python -m condiff cards` writes beside a shipped model
RECORDS = ("training.json", "history.json")  # a run's records, written whole by ``write_text``
# The temporary names a run writes under (relative to its folder): the only things ``clean`` deletes.
TEMPORARY = (STAGING, "checkpoint-[0-9][0-9][0-9][0-9][0-9][0-9].tmp", "checkpoint-[0-9][0-9][0-9][0-9][0-9][0-9].old",
             *(f"{name}.tmp" for name in RECORDS), "snapshots/.step-[0-9][0-9][0-9][0-9][0-9][0-9].tmp")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``path`` via ``PATH.tmp`` renamed into place: a reader (or a kill) never sees half of it."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    has_model = (folder / INDEX).is_file() or (folder / "config.json").is_file()
    if has_model and (folder / CARD).is_file():
        return f"{folder} holds a shipped model (a model with its card, {CARD})"
    return None


def file_in_the_way(path: Path) -> Path | None:
    """``path`` or the first of its parents that exists as something other than a folder, else ``None``."""
    return next((p for p in [*reversed(path.parents), path] if p.exists() and not p.is_dir()), None)


def is_run(folder: Path) -> bool:
    """Whether ``folder`` was made by a training run: its lock, its records or a checkpoint are there."""
    folder = Path(folder)
    return ((folder / LOCK).is_file() or any((folder / name).is_file() for name in RECORDS)
            or latest_checkpoint(folder) is not None)


def not_a_run_reason(folder: Path) -> str | None:
    """Why ``folder`` cannot be a run folder (a file in the way, or a non-empty folder no run made), else ``None``."""
    folder = Path(folder)
    blocker = file_in_the_way(folder)
    if blocker is not None:
        what = "--out" if blocker == folder else f"{blocker} (a parent of --out)"
        return f"{what} is a file, not a folder; a training run needs a folder: give a new or empty one"
    if folder.is_dir() and not is_run(folder):
        entries = sorted(p.name for p in folder.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            return (f"{folder} holds files that no training run made ({shown}); training would write among "
                    "them. Give a new or empty folder")
    return None


def _busy(folder: Path) -> str:
    return (f"another training run is writing {folder} (it holds {folder / LOCK}); wait for it to end, stop it, "
            "or choose another --out")


def set_aside(folder: str | Path) -> Path | None:
    """Move the run in ``folder`` whole to a new sibling ``NAME.previous`` (``-2``, ``-3``, ... if taken).

    Returns the new path, or ``None`` when there is no run to move (no folder, or only a lock in it).
    One rename: a kill leaves the run at one of the two places.
    A folder that no run made is refused, and so is a run that another process is writing.
    """
    folder = Path(folder)
    if not folder.is_dir() or all(p.name == LOCK for p in folder.iterdir()):
        return None
    reason = not_a_run_reason(folder)
    if reason:
        raise RunFolderError(reason)
    aside, n = folder.with_name(f"{folder.name}.previous"), 1
    while aside.exists():
        n += 1
        aside = folder.with_name(f"{folder.name}.previous-{n}")
    try:
        with FileLock(folder / LOCK, timeout=0):
            os.replace(folder, aside)  # the lock file moves with the run; it is released just after
    except Timeout:
        raise RunFolderError(_busy(folder)) from None
    except OSError as error:
        raise RunFolderError(describe_os_error(error, folder.parent, f"move {folder} aside") or
                             f"could not move {folder} aside to {aside}: {error}") from None
    return aside


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest whole checkpoint in ``output_dir``: a ``checkpoint-NNNNNN`` folder (never a ``.tmp`` one)."""
    done = sorted(Path(output_dir).glob("checkpoint-" + "[0-9]" * 6))
    return done[-1] if done else None


def _pipeline_files(folder: Path, components) -> set[Path]:
    """``model_index.json`` (if there) and every file in the ``components``' folders, relative to ``folder``."""
    files = {p.relative_to(folder) for name in components for p in (folder / name).rglob("*") if p.is_file()}
    return (files | {INDEX}) if (folder / INDEX).is_file() else files


class RunFolder:
    """Guard, lock and atomic writes for ``output_dir`` (a context manager; see the module doc)."""

    def __init__(self, output_dir: str | Path, overwrite_shipped: bool = False, lock: bool = True):
        """``lock=False`` for the other processes of a multi-process run (the main one locks and cleans)."""
        self.path = Path(output_dir)
        self.overwrite_shipped = overwrite_shipped
        self.lock = FileLock(self.path / LOCK, timeout=0) if lock else None  # timeout=0: fail at once if held

    # -- start and end ------------------------------------------------------------------------

    def check(self) -> None:
        """Refuse, before any work, a folder this run must not write: shipped weights, a file, other files."""
        reason = shipped_reason(self.path)
        if reason and not self.overwrite_shipped:
            raise RunFolderError(f"refusing to train into {self.path}: {reason}. Train into runs/NAME and ship "
                                 "with `python -m condiff cards --ship NAME=runs/NAME`, or pass "
                                 "--overwrite-shipped to replace those weights on purpose")
        reason = not_a_run_reason(self.path)
        if reason:
            raise RunFolderError(f"refusing to train into {self.path}: {reason}")

    def __enter__(self) -> RunFolder:
        if self.lock is not None:  # the main process checks; the others would race its lock file (see train)
            self.check()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.lock is not None:  # the main process: other processes of the run neither lock nor clean
                self.lock.acquire()
                try:
                    self.clean()
                except BaseException:
                    self.lock.release()
                    raise
        except Timeout:
            raise RunFolderError(_busy(self.path)) from None
        except OSError as error:
            self.__exit__()
            raise RunFolderError(describe_os_error(error, self.path, "start the run") or
                                 f"could not use {self.path} as the run folder: {error}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.release()

    def clean(self) -> None:
        """Remove what a killed run left half-written: the ``TEMPORARY`` names of this folder, nothing else."""
        for item in [p for pattern in TEMPORARY for p in self.path.glob(pattern)]:
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)

    def save_error(self, error: BaseException, step: int, saved: int) -> BaseException:
        """A failed save: a full or read-only disk in words, the folder cleaned of half-written files."""
        try:
            self.clean()
        except OSError:
            pass
        message = describe_os_error(error, self.path, f"save step {step} in {self.path}")
        if message is None:
            return error
        if getattr(error, "filename", None):
            message += f" (writing {error.filename})"
        if saved:
            kept = f"the checkpoint of step {saved} is kept: run the same command again to resume from it"
        elif (self.path / INDEX).is_file():
            kept = (f"no checkpoint was saved yet, so nothing to resume from; the pipeline of step {step} in "
                    f"{self.path} loads, but has no training.json: run the same command again to start over")
        else:
            kept = "nothing was saved yet"
        return RunFolderError(f"{message}; {kept}")

    # -- writing ------------------------------------------------------------------------------

    def save_checkpoint(self, accelerator, step: int) -> Path:
        """``accelerator.save_state`` into a temporary folder, renamed into place; then older checkpoints go.

        Every process calls it (each writes its RNG state). A kill at any moment leaves a whole checkpoint
        (this one or the one before) and at most leftovers that the next save clears.
        """
        final = self.path / f"checkpoint-{step:06d}"
        tmp, aside = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(tmp)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if final.exists():  # a --fresh run at a step that the old run had saved
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(final, aside)
            os.replace(tmp, final)
            for old in self.path.glob("checkpoint-*"):
                if old != final:
                    shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return final

    def save_pipeline(self, pipeline) -> None:
        """``pipeline.save_pretrained`` into the folder so that a kill at any moment leaves a loadable pipeline.

        Written whole into ``.pipeline.tmp/``, then each file renamed over its old copy (components
        first, ``model_index.json`` last); the old pipeline's files that the new one lacks go after.
        When old and new differ in files or configs, ``model_index.json`` is removed first: the folder
        is then briefly not a pipeline, rather than a mix of two.
        """
        staging = self.path / STAGING
        shutil.rmtree(staging, ignore_errors=True)
        pipeline.save_pretrained(staging)
        components = list(pipeline.components)  # unet, scheduler, label_encoder (a None one too)
        old, new = _pipeline_files(self.path, components), _pipeline_files(staging, components)
        configs = [name for name in new if name.suffix == ".json"]
        if old != new or any((self.path / c).read_bytes() != (staging / c).read_bytes() for c in configs):
            (self.path / INDEX).unlink(missing_ok=True)
        for name in sorted(new - {INDEX}) + [INDEX]:
            source, target = staging / name, self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(source, "rb") as f:
                os.fsync(f.fileno())  # on disk before it replaces the old copy
            os.replace(source, target)
        for name in old - new:
            (self.path / name).unlink()
        for name, module in pipeline.components.items():
            if module is None:
                shutil.rmtree(self.path / name, ignore_errors=True)  # a component the new pipeline does not have
        shutil.rmtree(staging, ignore_errors=True)

    def write_text(self, name: str, text: str) -> None:
        """Write the file ``name`` whole (``atomic_write_text``)."""
        atomic_write_text(self.path / name, text)

    def snapshot(self, step: int) -> None:
        """Copy the pipeline just saved (not the checkpoint) to ``snapshots/step-NNNNNN`` (via a .tmp folder)."""
        target = self.path / "snapshots" / f"step-{step:06d}"
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.path, tmp, ignore=lambda folder, names: [
            n for n in names if n in ("snapshots", LOCK) or n.startswith("checkpoint") or n.endswith(".tmp")])
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
