"""``python -m condiff``: help for every command, sample and evaluate on a tiny pipeline, exit code 2 on bad input.

The commands run in-process through ``condiff.__main__.main`` (no interpreter start-up per test), on the
``tiny_pipeline_dir`` and ``evaluator_dir`` fixtures of conftest.py, so nothing here needs the
shipped weights.
"""
from __future__ import annotations

import json
import re

import pytest
import torch
from tiny import TINY

from condiff.__main__ import main
from condiff.data.labels import OBJECTS
from condiff.recipes import RECIPES

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (more only wait on each other on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def exit_code(argv: list[str]) -> int:
    """Run the CLI; return its exit status (0 when it returns normally)."""
    try:
        main([str(a) for a in argv])
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 1  # SystemExit("message") exits with 1
    return 0


# ---------------------------------------------------------------------------------------------
# Help
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [[], ["train"], ["sample"], ["evaluate"]], ids=["top", "train", "sample", "evaluate"])
def test_help(argv, capsys):
    assert exit_code([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m condiff")
    assert " ".join(["python -m condiff", *argv]) in out.splitlines()[0]
    if not argv:  # every command, in the usage line and in the description
        commands = ("train", "sample", "evaluate", "results", "cards", "benchmark", "blog", "tutorial",
                    "train-evaluator")
        usage = out.split("\n\n")[0]
        assert all(command in usage for command in commands), usage
        assert all(f"python -m condiff {command}" in out for command in commands), out
    if argv == ["train"]:
        assert "time_sum_cosine" in out and "--max-steps" in out and "--fresh" in out
    if argv in (["sample"], ["evaluate"]):
        assert "--weights" in out and "--labels-file" in out
        assert "default: the best w the weights store" in " ".join(out.split())


def test_no_command_is_a_usage_error(capsys):
    assert exit_code([]) == 2
    assert "usage:" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# sample and evaluate
# ---------------------------------------------------------------------------------------------

def test_sample_with_labels_writes_a_png(tiny_pipeline_dir, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert exit_code(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube,blue sphere;gray cylinder",
                      "--steps", 2, "--out", out]) == 0
    assert out.read_bytes()[:8] == PNG
    assert "wrote 2 images" in capsys.readouterr().out


def test_sample_with_a_labels_file_writes_a_png(tiny_pipeline_dir, tmp_path, capsys):
    cases = [["red cube"], ["blue sphere", "gray cylinder"], ["green cube", "cyan sphere", "yellow cylinder"]]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(cases))
    out = tmp_path / "grid.png"
    assert exit_code(["sample", "--weights", tiny_pipeline_dir, "--labels-file", labels, "--num-images", 2,
                      "--scheduler", "ddpm", "--steps", 2, "--out", out]) == 0
    assert out.read_bytes()[:8] == PNG
    assert "wrote 6 images" in capsys.readouterr().out


def test_evaluate_prints_the_accuracy(tiny_pipeline_dir, evaluator_dir, capsys):
    assert exit_code(["evaluate", "--weights", tiny_pipeline_dir, "--evaluator", evaluator_dir,
                      "--split", "new_test", "--steps", 2]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^top-k accuracy: \d\.\d{3}$", out, flags=re.MULTILINE), out
    assert re.search(r"^images: 64 ", out, flags=re.MULTILINE), out  # the 64 cases of new_test


# ---------------------------------------------------------------------------------------------
# Bad input: one clear line on stderr, exit code 2
# ---------------------------------------------------------------------------------------------

def check_error(argv, capsys, *fragments) -> str:
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    return err


def test_unknown_label_lists_the_allowed_names(tiny_pipeline_dir, tmp_path, capsys):
    err = check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube,pink cube", "--steps", 2,
                       "--out", tmp_path / "x.png"], capsys, "error:", "'pink cube'")
    assert all(name in err for name in OBJECTS)
    assert not (tmp_path / "x.png").exists()


def test_missing_weights_folder(tmp_path, capsys):
    missing = tmp_path / "no_such_model"
    check_error(["sample", "--weights", missing, "--labels", "red cube", "--out", tmp_path / "x.png"], capsys,
                "error: no pipeline at", str(missing))
    check_error(["evaluate", "--weights", missing], capsys, "error: no pipeline at", str(missing))


def test_missing_evaluator_folder(tiny_pipeline_dir, tmp_path, capsys):
    missing = tmp_path / "no_such_evaluator"
    check_error(["evaluate", "--weights", tiny_pipeline_dir, "--evaluator", missing, "--steps", 2], capsys,
                "error: no evaluator at", str(missing))


def test_labels_and_labels_file_together(tiny_pipeline_dir, tmp_path, capsys):
    labels = tmp_path / "labels.json"
    labels.write_text('[["red cube"]]')
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--labels-file", labels,
                 "--out", tmp_path / "x.png"], capsys, "error:", "not both")


def test_conditional_model_without_labels(tiny_pipeline_dir, tmp_path, capsys):
    check_error(["sample", "--weights", tiny_pipeline_dir, "--out", tmp_path / "x.png"], capsys,
                "error:", "--labels")


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"red cube": 1}', "must hold a JSON list of object lists"),  # an object, not a list
        ('["red cube", "blue sphere"]', "must hold a JSON list of object lists"),  # names, not lists of names
        ('[["red cube"], ["pink cube"]]', "unknown label 'pink cube'"),
        ('[["red cube", "red cube"]]', "appears twice"),
        ('[["red cube", "blue cube", "gray cube", "green cube"]]', "1 to 3 objects"),
        ('[[]]', "1 to 3 objects"),
        ("[[", "error:"),  # not JSON at all
    ],
    ids=["dict", "flat-list", "unknown-name", "duplicate", "too-many", "empty-scene", "not-json"],
)
def test_invalid_labels_file(tiny_pipeline_dir, tmp_path, capsys, content, fragment):
    labels = tmp_path / "labels.json"
    labels.write_text(content)
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels-file", labels, "--out", tmp_path / "x.png"],
                capsys, "error:", fragment)


def test_missing_labels_file(tiny_pipeline_dir, tmp_path, capsys):
    missing = tmp_path / "nothing.json"
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels-file", missing, "--out", tmp_path / "x.png"],
                capsys, "error: --labels-file takes the path of a JSON file", f"{missing} does not exist")


def test_unknown_split(tiny_pipeline_dir, evaluator_dir, capsys):
    check_error(["evaluate", "--weights", tiny_pipeline_dir, "--evaluator", evaluator_dir, "--split", "nosuch"],
                capsys, "error: no split file", "new_test")


def test_unknown_recipe_and_scheduler_are_usage_errors(tiny_pipeline_dir, capsys):
    check_error(["train", "nosuch"], capsys, "invalid choice", "time_sum")
    check_error(["sample", "--weights", tiny_pipeline_dir, "--scheduler", "euler"], capsys, "invalid choice", "ddim")


@pytest.fixture
def tiny_recipe(monkeypatch):
    """The tests' tiny recipe in the registry, for this test only: ``train tiny`` runs in seconds."""
    monkeypatch.setitem(RECIPES, TINY.name, TINY)


def test_train_records_the_command_that_repeats_it(tiny_recipe, tmp_path):
    assert exit_code(["train", "tiny", "--out", tmp_path, "--max-steps", 2, "--batch-size", 4,
                      "--stop-after", 1]) == 0
    assert exit_code(["train", "tiny", "--out", tmp_path, "--max-steps", 2, "--batch-size", 4]) == 0  # resumes
    summary = json.loads((tmp_path / "training.json").read_text())
    assert summary["steps"] == 2 and summary["images_seen"] == 8
    assert summary["command"] == "python -m condiff train tiny --max-steps 2 --batch-size 4"


def test_train_with_a_corrupted_checkpoint(tiny_recipe, tmp_path, capsys):
    ckpt = tmp_path / "checkpoint-000002"
    ckpt.mkdir()
    (ckpt / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    check_error(["train", "tiny", "--out", tmp_path], capsys, "error: cannot resume from", str(ckpt))


def test_evaluate_defaults_to_the_stored_guidance_and_sampler(tiny_pipeline_dir, evaluator_dir, tmp_path, capsys):
    import shutil

    from condiff.tools.cards import store_sampling

    weights = tmp_path / "weights"
    shutil.copytree(tiny_pipeline_dir, weights)
    store_sampling(weights, 2.5, "dpm++", 3)
    assert exit_code(["evaluate", "--weights", weights, "--evaluator", evaluator_dir, "--split", "new_test"]) == 0
    out = capsys.readouterr().out
    assert "sampler: DPMSolverMultistepScheduler x 3  guidance: 2.5" in out, out
    assert re.search(r"^exact-scene accuracy: \d\.\d{3}$", out, flags=re.MULTILINE), out
    # Flags win over the stored values.
    assert exit_code(["evaluate", "--weights", weights, "--evaluator", evaluator_dir, "--split", "new_test",
                      "--guidance-scale", 1, "--scheduler", "ddim", "--steps", 2]) == 0
    assert "sampler: DDIMScheduler x 2  guidance: 1.0" in capsys.readouterr().out
    # A folder that stores nothing: DDIM-50 (here 2 steps) at w = 1.
    assert exit_code(["evaluate", "--weights", tiny_pipeline_dir, "--evaluator", evaluator_dir, "--split", "new_test",
                      "--steps", 2]) == 0
    assert "sampler: DDIMScheduler x 2  guidance: 1.0" in capsys.readouterr().out
