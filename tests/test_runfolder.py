"""Issue 10, training runs: shipped weights refused, one run per folder, a kill-proof pipeline, disk errors in words.

Each test names the issue's case it covers. Runs use the tests' ``tiny`` recipe (tests/tiny.py), in-process
except the kill test, which SIGKILLs ``python tests/tiny.py train tiny`` subprocesses at random moments.
"""
from __future__ import annotations

import errno
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler
from filelock import FileLock
from test_cli import check_error
from test_train import REPO, TINY_CLI, checkpoint, child_env, history, one_thread, run  # noqa: F401
from tiny import TINY, Killed, dying_replace

import condiff.runfolder
from condiff.pipeline import load_pipeline
from condiff.recipes import RECIPES
from condiff.runfolder import LOCK, RunFolderError, latest_checkpoint
from condiff.tools.commands import launched_main_process
from condiff.train import train


@pytest.fixture
def tiny_cli(monkeypatch):
    """``condiff.tools.commands.main`` knows the ``tiny`` recipe (in this process, for this test)."""
    monkeypatch.setitem(RECIPES, TINY.name, TINY)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Half-written files, and the lock if it is still held (the empty ``.lock`` file itself stays)."""
    try:
        with FileLock(folder / LOCK, timeout=0):
            held = []
    except TimeoutError:
        held = [str(folder / LOCK)]
    return [str(p) for p in folder.rglob("*.tmp")] + held


# ---------------------------------------------------------------------------------------------
# Case 1: shipped weights are never overwritten by accident
# ---------------------------------------------------------------------------------------------

def shipped_copy(folder: Path) -> Path:
    """A finished tiny pipeline with a weights card, like weights/NAME."""
    run(folder, stop_after=2)
    for item in folder.glob("checkpoint-*"):
        shutil.rmtree(item)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")
    return folder


def test_shipped_folder_is_refused(tmp_path, capsys, tiny_cli):
    shipped = shipped_copy(tmp_path / "shipped")
    before = files(shipped)
    check_error(["train", "tiny", "--out", shipped], capsys, f"refusing to train into {shipped}", "--overwrite-shipped")
    assert files(shipped) == before
    with pytest.raises(RunFolderError, match="holds a shipped model"):
        run(shipped)
    assert files(shipped) == before
    run(shipped, overwrite_shipped=True)  # asked for explicitly
    assert json.loads((shipped / "training.json").read_text())["steps"] == TINY.max_steps


def test_only_the_main_process_of_a_launch_checks_the_folder(monkeypatch):
    """Under `accelerate launch`, rank 1 must not check a folder that rank 0 is creating (it would refuse it)."""
    monkeypatch.delenv("RANK", raising=False)
    assert launched_main_process()  # a plain run
    monkeypatch.setenv("RANK", "0")
    assert launched_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not launched_main_process()


def test_weights_folder_is_refused(tmp_path, capsys, monkeypatch, tiny_cli):
    weights = tmp_path / "weights"  # stands in for the repository's weights/ (never touched by tests)
    (weights / "time_sum").mkdir(parents=True)
    monkeypatch.setattr(condiff.runfolder, "WEIGHTS_DIR", weights)
    for out in (weights, weights / "time_sum", weights / "new_model"):
        check_error(["train", "tiny", "--out", out], capsys, "refusing to train into", "shipped weights")
        check_error(["train-evaluator", "--out", out, "--max-steps", 1], capsys, "refusing to train into")
    assert [p.name for p in weights.rglob("*")] == ["time_sum"]


# ---------------------------------------------------------------------------------------------
# Case 6: a kill at any moment leaves a loadable pipeline and a resumable checkpoint
# ---------------------------------------------------------------------------------------------

def kill_randomly(out: Path, kills: int, steps: int, log: Path, seed: int = 0, window: float = 0.4,
                  mid_save: list | None = None) -> list[int]:
    """SIGKILL ``kills`` training subprocesses on ``out`` at random moments after their first save.

    After each kill the checkpoint and the pipeline must load; returns the checkpoint's step after each.
    ``mid_save`` collects, per kill, the half-written files it left (non-empty: it landed inside a save).
    """
    rng, seen = random.Random(seed), []
    for _ in range(kills):
        before = latest_checkpoint(out)
        with log.open("a") as f:
            proc = subprocess.Popen([*TINY_CLI, "train", "tiny", "--out", str(out), "--max-steps", str(steps),
                                     "--log-every", "1"],
                                    cwd=REPO, env=child_env(), stdout=f, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while latest_checkpoint(out) in (None, before):  # until this process has saved once
                assert proc.poll() is None, f"training exited early:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no checkpoint after 120 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0, window))  # lands in a step or in a save, wherever
            assert proc.poll() is None, "the run finished before it was killed: raise `steps`"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if mid_save is not None:
            mid_save.append(sorted(p.name for p in out.rglob("*.tmp")))
        state = checkpoint(out)  # a whole checkpoint, always
        load_pipeline(out)  # a whole pipeline, always
        seen.append(state["step"])
    return seen


def test_random_kills_leave_a_loadable_pipeline(tmp_path):
    out, steps = tmp_path / "run", 400
    seen = kill_randomly(out, kills=4, steps=steps, log=tmp_path / "train.log")
    assert len(seen) == 4 and seen == sorted(seen), seen
    summary = run(out, max_steps=steps, stop_after=2)  # the run resumes where the last checkpoint left it
    assert summary["steps"] == seen[-1] + 2
    assert [h["step"] for h in history(out)] == list(range(1, seen[-1] + 3))
    assert leftovers(out) == []



def test_kill_while_the_pipeline_is_written(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(out, stop_after=2)

    def half_written(self, save_directory, **kwargs):  # the old failure: a 0-byte scheduler_config.json
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        (Path(save_directory) / "scheduler_config.json").write_bytes(b"")
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(DDPMScheduler, "save_pretrained", half_written)
        with pytest.raises(Killed):
            run(out)
    load_pipeline(out)
    run(out)  # resumes, and cleans what the "kill" left
    assert leftovers(out) == []
    load_pipeline(out)


@pytest.mark.parametrize("kill_at", range(1, 10))
def test_kill_between_renames(tmp_path, monkeypatch, kill_at):
    """Whichever file of the pipeline was being renamed into place, the folder loads."""

    out = tmp_path / "run"
    run(out, stop_after=2)
    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(condiff.runfolder.os, "replace", dying_replace(kill_at, calls))
        with pytest.raises(Killed):
            run(out)
    load_pipeline(out)
    assert checkpoint(out)["step"] in (2, 4)


# ---------------------------------------------------------------------------------------------
# Case 7: a full or read-only disk is said in words, naming the folder, with nothing left behind
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device"), "is full"),
    (RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4416 vs 4310"), "is full"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
    (OSError(errno.EACCES, "Permission denied"), "no permission to write"),
], ids=["enospc", "torch-full", "erofs", "eacces"])
def test_disk_errors_in_words(tmp_path, monkeypatch, error, words):
    out = tmp_path / "run"
    save = torch.save

    def failing_save(obj, path, *args, **kwargs):
        if "checkpoint-000004" in str(path):  # the second checkpoint: half a file, then the error
            Path(path).write_bytes(b"\x00" * 100)
            raise error
        return save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    if isinstance(error, RuntimeError):  # torch's message does not say why: the disk is asked
        monkeypatch.setattr(condiff.runfolder.shutil, "disk_usage", lambda path: type("U", (), {"free": 0})())
    with pytest.raises(RunFolderError) as raised:
        run(out)
    message = str(raised.value)
    assert words in message and str(out) in message and "checkpoint of step 2 is kept" in message
    assert leftovers(out) == []
    assert checkpoint(out)["step"] == 2
    load_pipeline(out)


def test_read_only_folder_fails_before_training(tmp_path, capsys, monkeypatch, tiny_cli):
    real_open = condiff.runfolder.os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(condiff.runfolder.os, "open", read_only)
    check_error(["train", "tiny", "--out", tmp_path / "run"], capsys,
                "could not start the run:", f"{tmp_path / 'run'} is on a read-only file system")
    assert not (tmp_path / "run" / "history.json").exists()


# ---------------------------------------------------------------------------------------------
# Case 9: one run per folder
# ---------------------------------------------------------------------------------------------

def test_second_run_on_a_folder_is_stopped(tmp_path, capsys, tiny_cli):
    out = tmp_path / "run"
    holder = (f"from condiff.runfolder import RunFolder; folder = RunFolder({str(out)!r}).__enter__(); print('locked', "
              "flush=True); import time; time.sleep(60)")  # holds the folder as a training run does
    other = subprocess.Popen([sys.executable, "-c", holder], cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout.readline().strip() == "locked"
        check_error(["train", "tiny", "--out", out], capsys, f"another training run is writing {out}",
                    "wait for it to end, stop it, or choose another --out")
        assert not (out / "history.json").exists()
    finally:
        other.kill()  # SIGKILL: the kernel frees its lock
        other.wait()
    run(out)  # at once
    assert leftovers(out) == []  # and the lock is released at the end


# ---------------------------------------------------------------------------------------------
# Case 10: a resumed run keeps its batch size (and learning rate and seed)
# ---------------------------------------------------------------------------------------------

def test_resume_with_another_batch_size_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    train(TINY.with_overrides(batch_size=4), run_dir, progress=False, stop_after=2)
    with pytest.raises(ValueError, match="was started with --batch-size 4; resuming it with --batch-size 8"):
        run(run_dir)
    assert checkpoint(run_dir)["step"] == 2


def test_cli_resume_keeps_the_run_settings(tmp_path, capsys, tiny_cli):
    from condiff.tools.commands import main

    out = tmp_path / "run"
    main(["train", "tiny", "--out", str(out), "--batch-size", "4", "--seed", "3", "--stop-after", "2"])
    main(["train", "tiny", "--out", str(out)])  # resumed without the flags: the run's own settings
    summary = json.loads((out / "training.json").read_text())
    assert summary["steps"] == TINY.max_steps
    assert summary["images_seen"] == TINY.max_steps * 4
    assert "--batch-size 4" in summary["command"] and "--seed 3" in summary["command"]
    check_error(["train", "tiny", "--out", out, "--batch-size", 16], capsys, "was started with --batch-size 4")


def test_cli_loss_weighting_and_timestep_flags_are_run_settings(tmp_path, capsys, tiny_cli):
    """``--snr-gamma`` and ``--timestep-sampling`` reach the recipe and the reproduction command, a resume
    without them keeps the run's own, and one with other values (or none where the run had one) is refused."""
    from condiff.tools.commands import main

    out = tmp_path / "run"
    main(["train", "tiny", "--out", str(out), "--snr-gamma", "5", "--timestep-sampling", "high_noise",
          "--label-hidden-dim", "32", "--stop-after", "2"])
    main(["train", "tiny", "--out", str(out)])
    summary = json.loads((out / "training.json").read_text())
    assert summary["steps"] == TINY.max_steps
    assert (summary["recipe"]["snr_gamma"], summary["recipe"]["timestep_sampling"]) == (5.0, "high_noise")
    assert "--snr-gamma 5.0" in summary["command"] and "--timestep-sampling high_noise" in summary["command"]
    assert summary["recipe"]["label_hidden_dim"] == 32 and "--label-hidden-dim 32" in summary["command"]
    check_error(["train", "tiny", "--out", out, "--max-steps", 9, "--snr-gamma", 2], capsys,
                "was started with --snr-gamma 5.0; resuming it with --snr-gamma 2.0")
    plain = tmp_path / "plain"
    main(["train", "tiny", "--out", str(plain), "--stop-after", "2"])
    check_error(["train", "tiny", "--out", plain, "--snr-gamma", 5], capsys,
                "was started with no --snr-gamma; resuming it with --snr-gamma 5.0", "Resume without --snr-gamma")
