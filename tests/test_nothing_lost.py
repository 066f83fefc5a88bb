"""Issue 17: nothing lost, nothing mislabelled. Each test names the row of the issue's table it covers.

The data-loss rows (1, 2, 3, 5) check that every file that was there is still there, byte for byte. Shipping
and sampling go to a stand-in ``weights/`` under ``tmp_path`` (``WEIGHTS_DIR`` patched); the ``real_weights_kept``
fixture checks that the repository's own ``weights/`` is never touched. Runs use the tests' ``tiny`` recipe.
"""
from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from test_cli import PNG, check_error, one_thread  # noqa: F401  (one_thread: autouse fixture)
from test_cli import exit_code as run_cli
from test_train import REPO, TINY_CLI, child_env
from test_train import run as train_tiny
from tiny import TINY, Killed, dying_replace

import condiff.runfolder
import condiff.tools.cards
import condiff.tools.commands
from condiff import WEIGHTS_DIR
from condiff.pipeline import ConditionalDDPMPipeline, load_pipeline
from condiff.recipes import RECIPES
from condiff.runfolder import latest_checkpoint
from condiff.tools.cards import ship


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def real_weights_kept():
    """The repository's weights/ is the same before and after every test here (names, sizes, times)."""
    def listing():
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in WEIGHTS_DIR.rglob("*")}

    before = listing()
    yield
    assert listing() == before, "a test changed the repository's weights/"


@pytest.fixture
def tiny_cli(monkeypatch):
    monkeypatch.setitem(RECIPES, TINY.name, TINY)


@pytest.fixture
def no_sampling(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("sampling started before the bad input was reported")
    monkeypatch.setattr(ConditionalDDPMPipeline, "__call__", fail)


def fake_run(folder: Path, pipeline_dir: Path, recipe: dict, steps: int = 4) -> Path:
    """A finished run as `train` leaves it: a pipeline, training.json, history.json, a checkpoint."""
    shutil.copytree(pipeline_dir, folder)
    (folder / "training.json").write_text(json.dumps({
        "recipe": recipe, "steps": steps, "images_seen": 8 * steps, "train_seconds": 1.0, "seed": 0,
        "command": f"python -m condiff train {recipe.get('name', '?')}", "hardware": "CPU: test"}))
    (folder / "history.json").write_text("[]\n")
    (folder / f"checkpoint-{steps:06d}").mkdir()
    (folder / f"checkpoint-{steps:06d}" / "optimizer.bin").write_bytes(b"state")
    return folder


@pytest.fixture
def weights(tmp_path, monkeypatch, tiny_pipeline_dir) -> Path:
    """A stand-in weights/ with a shipped time_sum model (and its card), results.json, and the evaluator."""
    folder = tmp_path / "repo" / "weights"
    model = fake_run(folder / "time_sum", tiny_pipeline_dir, {"name": "time_sum", "mode": "time_sum"})
    shutil.rmtree(model / "checkpoint-000004")
    (model / "README.md").write_text("---\nlicense: mit\n---\n# time_sum\n")
    (folder / "results.json").write_text('{"rows": []}\n')
    (folder / "README.md").write_text("# Shipped weights\n")
    monkeypatch.setattr(condiff.tools.cards, "WEIGHTS_DIR", folder)
    monkeypatch.setattr(condiff.runfolder, "WEIGHTS_DIR", folder)
    return folder


@pytest.fixture
def time_sum_run(tmp_path, tiny_pipeline_dir) -> Path:
    return fake_run(tmp_path / "runs" / "t1", tiny_pipeline_dir, {"name": "time_sum", "mode": "time_sum"})


# ---------------------------------------------------------------------------------------------
# Rows 1-4: cards --ship NAME=RUN
# ---------------------------------------------------------------------------------------------

def test_ship_from_the_target_itself_is_refused_and_keeps_every_file(weights, capsys):
    before = files(weights)
    check_error(["cards", "--ship", f"time_sum={weights / 'time_sum'}"], capsys, "is inside", "shipping a folder")
    check_error(["cards", "--ship", f"time_sum={weights}"], capsys, "error:")
    assert files(weights) == before


def test_ship_with_an_empty_name_is_refused_and_keeps_every_file(weights, time_sum_run, capsys):
    before = files(weights)
    err = check_error(["cards", "--ship", f"={time_sum_run}"], capsys, "--ship takes NAME=RUN_DIR")
    assert "e.g. --ship time_sum=runs/time_sum" in err
    assert files(weights) == before


def test_ship_to_a_path_outside_weights_is_refused_and_keeps_every_file(weights, time_sum_run, capsys):
    notebooks = weights.parent / "notebooks"
    notebooks.mkdir()
    (notebooks / "01_unconditional_ddpm.ipynb").write_text('{"cells": []}')
    (notebooks / "images").mkdir()
    (notebooks / "images" / "samples.png").write_bytes(PNG + b"...")
    before, shipped = files(notebooks), files(weights)
    for name in ("../notebooks", "..", ".", "time_sum/../../notebooks", "/tmp"):
        check_error(["cards", "--ship", f"{name}={time_sum_run}"], capsys, "NAME must be one of", "time_sum")
    assert files(notebooks) == before and files(weights) == shipped


def test_ship_refuses_an_unknown_name_or_another_recipes_run(weights, time_sum_run, tiny_pipeline_dir, tmp_path,
                                                                  capsys):
    before = files(weights)
    check_error(["cards", "--ship", f"nosuch={time_sum_run}"], capsys, "NAME must be one of",
                ", ".join([*RECIPES, "evaluator"]))
    check_error(["cards", "--ship", f"concat={time_sum_run}"], capsys,
                "is a run of the recipe 'time_sum', not 'concat'")
    nameless = fake_run(tmp_path / "runs" / "nameless", tiny_pipeline_dir, {"mode": "time_sum"})
    check_error(["cards", "--ship", f"concat={nameless}"], capsys, "trained with mode='time_sum', but concat has")
    linear = fake_run(tmp_path / "runs" / "linear", tiny_pipeline_dir, {"name": "time_sum_cosine", "mode": "time_sum",
                                                                         "beta_schedule": "linear"})
    check_error(["cards", "--ship", f"time_sum_cosine={linear}"], capsys, "beta_schedule='linear'")
    check_error(["cards", "--ship", f"evaluator={time_sum_run}"], capsys, "not a scene classifier's run")
    check_error(["cards", "--ship", f"time_sum={time_sum_run}", "--ship", f"concat={time_sum_run}"], capsys,
                "not 'concat'")  # every --ship checked before the first is shipped
    assert files(weights) == before


def test_ship_of_the_recipes_own_run_replaces_the_model_and_writes_its_card(weights, time_sum_run, capsys):
    assert run_cli(["cards", "--ship", f"time_sum={time_sum_run}"]) == 0
    shipped = files(weights / "time_sum")
    assert shipped.pop("README.md").startswith(b"---")  # the new card
    assert shipped == {k: v for k, v in files(time_sum_run).items() if not k.startswith("checkpoint")}
    assert (weights / "results.json").is_file()
    assert [p.name for p in weights.iterdir() if p.name.startswith(".")] == []  # no temporary folder left



@pytest.mark.parametrize("kill_at", [1, 2])
def test_ship_killed_between_its_renames_keeps_the_old_model(weights, time_sum_run, monkeypatch, kill_at):
    """The new folder is renamed into place whole; the old one is set aside first and put back by the next ship."""
    old_model = files(weights / "time_sum")
    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(condiff.tools.cards.os, "replace", dying_replace(kill_at, calls))
        with pytest.raises(Killed):
            ship(time_sum_run, "time_sum", weights)
    kept = [files(p) for p in weights.iterdir() if p.is_dir() and files(p) == old_model]
    assert len(kept) == 1, "the old model must be somewhere, whole"
    ship(time_sum_run, "time_sum", weights)  # puts things right
    assert files(weights / "time_sum") == {k: v for k, v in files(time_sum_run).items()
                                           if not k.startswith("checkpoint")}
    assert sorted(p.name for p in weights.iterdir()) == ["README.md", "results.json", "time_sum"]


# ---------------------------------------------------------------------------------------------
# Row 5: train deletes only what it made
# ---------------------------------------------------------------------------------------------

def test_train_into_a_folder_of_other_files_is_refused_and_keeps_every_file(tmp_path, capsys, tiny_cli):
    folder = tmp_path / "mine"
    (folder / "drafts").mkdir(parents=True)
    (folder / "notes.tmp").write_text("my notes")
    (folder / "drafts" / "figure.tmp").write_bytes(b"\x00\x01")
    (folder / "drafts" / "cache.tmp").mkdir()
    (folder / "drafts" / "cache.tmp" / "a.bin").write_bytes(b"abc")
    (folder / "data.csv").write_text("1,2\n")
    before = files(folder)
    check_error(["train", "tiny", "--out", folder], capsys, f"refusing to train into {folder}",
                "holds files that no training run made", "Give a new or empty folder")
    check_error(["train", "tiny", "--out", folder, "--fresh"], capsys, "holds files that no training run made")
    assert files(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # nothing moved aside either


def test_a_run_folder_is_cleaned_of_its_own_temporary_names_only(tmp_path, tiny_cli):
    out = tmp_path / "run"
    train_tiny(out, stop_after=2)
    (out / "checkpoint-000002.tmp").mkdir()  # what a killed save leaves
    (out / "training.json.tmp").write_text("{")
    (out / "my-notes.tmp").write_text("the user's own")
    (out / "notes").mkdir()
    (out / "notes" / "extra.tmp").write_text("the user's own")
    train_tiny(out)
    assert not (out / "checkpoint-000002.tmp").exists() and not (out / "training.json.tmp").exists()
    assert (out / "my-notes.tmp").read_text() == "the user's own"
    assert (out / "notes" / "extra.tmp").read_text() == "the user's own"


# ---------------------------------------------------------------------------------------------
# Row 7: --fresh moves the old run aside; a kill at any write leaves records that match the weights
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    train_tiny(out)
    torch.set_num_threads(before)
    return out


def check_fresh_run_records(out: Path, old: dict[str, bytes], first_save: bool = True) -> None:
    """The old run (seed 0) is whole in one folder: ``out`` untouched, or the one set aside. A fresh run's
    folder holds no record of it: its records, if any, are the new run's (seed 1), up to its checkpoint
    (within its first save: a later save swaps the pipeline in before the records, as a resumed run does)."""
    aside = out.with_name(f"{out.name}.previous")
    if not aside.exists():
        assert files(out) == old, "without a set-aside the folder must still be the old run"
        return
    assert files(aside) == old, "the run set aside is not the old run"
    if (out / "training.json").is_file():
        summary = json.loads((out / "training.json").read_text())
        assert summary["seed"] == 1, "a record of the old run beside the new run's weights"
        assert not first_save or latest_checkpoint(out).name == f"checkpoint-{summary['steps']:06d}"
    if first_save and (out / "history.json").is_file():
        steps = [h["step"] for h in json.loads((out / "history.json").read_text())]  # one entry per log_every
        assert not steps or latest_checkpoint(out).name == f"checkpoint-{steps[-1]:06d}"
    if (out / "model_index.json").is_file():
        load_pipeline(out)


FIRST_SAVE_WRITES = 10  # the set-aside, the pipeline's 6 files, the checkpoint, history.json, training.json


@pytest.mark.parametrize("kill_at", range(1, FIRST_SAVE_WRITES + 1))
def test_fresh_killed_at_any_write_keeps_records_and_pipeline_together(finished_run, tmp_path, monkeypatch,
                                                                            tiny_cli, kill_at):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    old = files(out)
    calls = []
    monkeypatch.setattr(condiff.runfolder.os, "replace", dying_replace(kill_at, calls))
    from condiff.tools.commands import main

    with pytest.raises(Killed):
        main(["train", "tiny", "--out", str(out), "--fresh", "--seed", "1"])
    assert len(calls) == kill_at
    check_fresh_run_records(out, old)


def test_fresh_sigkilled_during_its_first_save(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    old = files(out)
    argv = ["train", "tiny", "--out", str(out), "--fresh", "--seed", "1", "--max-steps", "40"]
    proc = subprocess.Popen([*TINY_CLI, *argv], cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out.with_name("run.previous").exists() and
                   ((out / ".pipeline.tmp").exists() or (out / "checkpoint-000002.tmp").exists())):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no save began within 120 s"
            time.sleep(0.001)
        first_save = latest_checkpoint(out) is None  # else the poll came late: a later save
        proc.send_signal(signal.SIGKILL)  # inside a save of the fresh run, most often its first
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check_fresh_run_records(out, old, first_save)


# ---------------------------------------------------------------------------------------------
# Row 10: Ctrl-C says what was saved, exit code 130
# ---------------------------------------------------------------------------------------------

def interrupt_on_call(monkeypatch, n: int) -> None:
    call, calls = ConditionalDDPMPipeline.__call__, []

    def interrupting(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return call(self, *args, **kwargs)

    monkeypatch.setattr(ConditionalDDPMPipeline, "__call__", interrupting)


def test_ctrl_c_during_sample_says_nothing_was_written(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    interrupt_on_call(monkeypatch, 1)
    assert run_cli(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--steps", 1,
                    "--out", tmp_path / "x.png"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "interrupted (Ctrl-C): nothing was written", err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_long_sample_keeps_the_parts_written(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(condiff.tools.commands, "PART_IMAGES", 2)
    monkeypatch.setattr(condiff.tools.commands, "GRID_CAPTIONS", 1)
    interrupt_on_call(monkeypatch, 2)
    assert run_cli(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--num-images", 6,
                    "--batch-size", 2, "--steps", 1, "--out", tmp_path / "x.png"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted (Ctrl-C): wrote 2 images in 1 file(s) before it stopped: {tmp_path / 'x-part1.png'}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-part1.png"]
    assert (tmp_path / "x-part1.png").read_bytes()[:8] == PNG


def test_ctrl_c_during_train_names_the_checkpoint_kept(tmp_path):
    out = tmp_path / "run"
    # Ctrl-C's default action for the child, even where this suite runs in the background (nohup, `&`),
    # whose processes inherit SIGINT ignored, and a Python started that way keeps ignoring it.
    proc = subprocess.Popen([*TINY_CLI, "train", "tiny", "--out", str(out), "--max-steps", "400"], cwd=REPO,
                            env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while latest_checkpoint(out) is None:
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    step = int(latest_checkpoint(out).name[-6:])
    assert err.strip().splitlines()[-1] == (
        f"interrupted (Ctrl-C): {out} keeps the checkpoint of step {step} (and a loadable pipeline): run the same "
        "command again to resume from it")
    load_pipeline(out)


# ---------------------------------------------------------------------------------------------
# Rows 11-17: output paths and inputs checked before any work
# ---------------------------------------------------------------------------------------------

def test_sample_into_weights_is_refused(weights, tiny_pipeline_dir, capsys, no_sampling):
    before = files(weights)
    for out in (weights / "time_sum", weights / "time_sum" / "grid.png", weights / "new.png"):
        check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--out", out], capsys,
                    "refusing to write --out", "shipped weights")
    assert files(weights) == before


def test_deeply_nested_labels_file_is_a_clear_error(tiny_pipeline_dir, tmp_path, capsys, no_sampling):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    err = check_error(["sample", "--weights", tiny_pipeline_dir, "--labels-file", path, "--out", tmp_path / "x.png"],
                      capsys, f"error: {path} nests lists or objects too deep")
    assert "RecursionError" not in err


def test_missing_labels_file_says_it_takes_a_file_path(tiny_pipeline_dir, tmp_path, capsys, monkeypatch,
                                                             no_sampling):
    monkeypatch.chdir(tmp_path)
    err = check_error(["sample", "--weights", tiny_pipeline_dir, "--labels-file", "test", "--out", "x.png"], capsys,
                      "--labels-file takes the path of a JSON file", "test does not exist")
    assert "use one of test" not in err


def test_evaluate_refuses_split_with_labels_file(tiny_pipeline_dir, evaluator_dir, tmp_path, capsys,
                                                       no_sampling):
    labels = tmp_path / "labels.json"
    labels.write_text('[["red cube"]]')
    check_error(["evaluate", "--weights", tiny_pipeline_dir, "--evaluator", evaluator_dir, "--split", "single",
                 "--labels-file", labels], capsys, "give --split or --labels-file, not both")


def test_tutorial_names_the_notebooks_when_a_pattern_matches_none(capsys, monkeypatch):
    from condiff.tools import tutorial

    def fail(*args, **kwargs):
        raise AssertionError("a notebook ran")

    monkeypatch.setattr(tutorial, "run_notebook", fail)
    err = check_error(["tutorial", "99"], capsys, "no notebook matches '99'", "01_unconditional_ddpm")
    assert "05_cosine_schedule" in err
    check_error(["tutorial", "01", "nosuch"], capsys, "no notebook matches 'nosuch'")


def test_benchmark_refuses_an_empty_or_missing_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    check_error(["benchmark", "--samplers", tmp_path / "empty"], capsys, "holds no model folder")
    check_error(["benchmark", "--samplers", tmp_path / "missing"], capsys, "does not exist")
    check_error(["benchmark", "--curve", tmp_path / "missing"], capsys, "does not exist", "--snapshot-every")
    check_error(["benchmark", "--curve", tmp_path / "empty"], capsys, "holds no snapshots")
    check_error(["benchmark", "--record-leg"], capsys, "--record-leg takes --curve RUN_DIR")
    check_error(["benchmark", "--curve", tmp_path / "empty", "--record-leg"], capsys, "not a warm restart",
                "train --init-from")  # before any snapshot is scored


def test_benchmark_json_is_checked_before_the_benchmark(tmp_path, capsys, monkeypatch):
    from condiff.tools import benchmark

    def fail(*args, **kwargs):
        raise AssertionError("the benchmark ran before --json was checked")

    for name in ("sampler_table", "training_curve", "throughput"):
        monkeypatch.setattr(benchmark, name, fail)
    (tmp_path / "file").write_text("a file")
    check_error(["benchmark", "--throughput", "--json", tmp_path / "file" / "r.json"], capsys,
                "cannot write --json", "is a file, not a folder")
    check_error(["benchmark", "--samplers", tmp_path, "--json", tmp_path], capsys,
                "cannot write --json", "it is a folder")


# ---------------------------------------------------------------------------------------------
# Row 18: nothing to do is said
# ---------------------------------------------------------------------------------------------

def test_train_past_a_finished_run_says_nothing_to_do(finished_run, tmp_path, capsys, tiny_cli):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = files(out)
    check_error(["train", "tiny", "--out", out, "--max-steps", 2], capsys,
                f"{out} already holds 4 steps, past --max-steps 2: nothing to train")
    assert run_cli(["train", "tiny", "--out", out]) == 0
    assert f"nothing to do: {out} already holds all 4 steps" in capsys.readouterr().out
    assert files(out) == before


# ---------------------------------------------------------------------------------------------
# Rows 19-20: a file where a folder is needed, a full disk: named
# ---------------------------------------------------------------------------------------------

def test_a_file_where_a_folder_is_needed_is_named(tiny_pipeline_dir, tmp_path, capsys, tiny_cli, no_sampling):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    err = check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--out", f"{afile}/"],
                      capsys, f"--out {afile}/ names a folder, but {afile} is a file")
    err += check_error(["train", "tiny", "--out", afile], capsys, f"refusing to train into {afile}",
                       "--out is a file, not a folder")
    err += check_error(["train", "tiny", "--out", afile / "run"], capsys, f"{afile} (a parent of --out) is a file")
    assert "Errno" not in err and afile.read_text() == "keep me"


def test_disk_full_while_sampling_names_the_file(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(PNG)  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full)
    out = tmp_path / "x.png"
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--steps", 1, "--out", out],
                capsys, f"error: could not write {out}: No space left on device")
    assert list(tmp_path.iterdir()) == []  # no half-written PNG


def test_disk_full_at_the_first_save_says_what_was_written(tmp_path, monkeypatch):
    from condiff.runfolder import RunFolderError

    save = torch.save

    def full(obj, path, *args, **kwargs):
        if "checkpoint-000002" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    with pytest.raises(RunFolderError) as raised:
        train_tiny(out)
    message = str(raised.value)
    assert "is full" in message and "nothing was saved yet" not in message
    assert f"the pipeline of step 2 in {out} loads, but has no training.json" in message
    load_pipeline(out)
    assert latest_checkpoint(out) is None and not (out / "training.json").exists()


# ---------------------------------------------------------------------------------------------
# Row 21: blog replaces its own earlier post of a notebook
# ---------------------------------------------------------------------------------------------

def test_blog_exported_again_replaces_the_earlier_post(tmp_path, capsys):
    from test_blog import write_notebook

    notebook = write_notebook(tmp_path / "09_test_post.ipynb")
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "2020-01-01-09_test_post.md").write_text("a post of the user's, no front matter\n")
    assert run_cli(["blog", str(notebook), "--out", posts, "--date", "2026-11-27"]) == 0
    assert run_cli(["blog", str(notebook), "--out", posts, "--date", "2026-12-04"]) == 0
    names = sorted(p.name for p in posts.glob("*.md"))
    assert names == ["2020-01-01-09_test_post.md", "2026-12-04-09_test_post.md"]


# ---------------------------------------------------------------------------------------------
# Row 22: long work says so, and writes as it goes
# ---------------------------------------------------------------------------------------------

def test_long_sample_says_how_long_and_writes_parts(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    for name, value in [("PART_IMAGES", 4), ("GRID_CAPTIONS", 2), ("LONG_WORK_SECONDS", 0), ("PROBE_IMAGE_STEPS", 0)]:
        monkeypatch.setattr(condiff.tools.commands, name, value)
    out = tmp_path / "many.png"
    assert run_cli(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube;blue sphere", "--num-images", 5,
                    "--batch-size", 3, "--steps", 2, "--out", out]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sample: 10 images, 2 denoising steps each, in 4 batches: about "), lines
    assert "written in 3 files of up to 4 images (many-part1.png ...)" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many-part1.png", "many-part2.png", "many-part3.png"]
    assert f"wrote 10 images to {tmp_path / 'many-part1.png'} ... {tmp_path / 'many-part3.png'}" in lines[-1]


def test_long_evaluate_says_how_long_first(tiny_pipeline_dir, evaluator_dir, capsys, monkeypatch):
    for name, value in [("LONG_WORK_SECONDS", 0), ("PROBE_IMAGE_STEPS", 0)]:
        monkeypatch.setattr(condiff.tools.commands, name, value)
    assert run_cli(["evaluate", "--weights", tiny_pipeline_dir, "--evaluator", evaluator_dir, "--split", "single",
                    "--steps", 1, "--batch-size", 16]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("evaluate: 48 images, 1 denoising steps each, in 3 batches: about "), lines


def test_short_sample_is_not_timed(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    calls = []
    call = ConditionalDDPMPipeline.__call__
    monkeypatch.setattr(ConditionalDDPMPipeline, "__call__",
                        lambda self, *a, **k: calls.append(1) or call(self, *a, **k))
    assert run_cli(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--steps", 2,
                    "--out", tmp_path / "x.png"]) == 0
    assert len(calls) == 1 and "about" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Item 3: the tools' numbers are checked like the readers' commands' numbers
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["benchmark", "--throughput", "--steps", "0"], "argument --steps: must be a whole number >= 1"),
    (["benchmark", "--throughput", "--batch-size", "nan"], "argument --batch-size: must be a whole number >= 1"),
    (["blog", "--out", "x", "--interval-days", "-7"], "argument --interval-days: must be a whole number >= 1"),
])
def test_tools_numbers_are_checked(argv, fragment, capsys):
    check_error(argv, capsys, fragment)
