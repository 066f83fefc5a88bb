"""Issue 10: hostile but realistic input to the CLI gets a clear error before any work, never silent garbage.

Each test names the issue's case it covers. The commands run in-process on the tiny fixtures of
conftest.py; ``no_sampling`` makes any denoising fail, to show an error comes before the work.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_cli import PNG, check_error, one_thread  # noqa: F401  (one_thread: autouse fixture)
from test_cli import exit_code as run

import condiff
from condiff.data.iclevr import load_split
from condiff.evaluate import evaluate, load_evaluator
from condiff.pipeline import ConditionalDDPMPipeline, load_pipeline


@pytest.fixture
def no_sampling(monkeypatch):
    """Any call of the pipeline fails the test: the error under test must come first."""
    def fail(*args, **kwargs):
        raise AssertionError("sampling started before the bad input was reported")
    monkeypatch.setattr(ConditionalDDPMPipeline, "__call__", fail)


@pytest.fixture(scope="module")
def unconditional_dir(tmp_path_factory):
    from diffusers import DDPMScheduler

    from condiff.models import build_models

    torch.manual_seed(0)
    unet, _ = build_models("unconditional", image_size=16, block_out_channels=(8, 16))
    path = tmp_path_factory.mktemp("tiny_unconditional")
    ConditionalDDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------
# Case 2: any number of scenes, in batches, memory bounded
# ---------------------------------------------------------------------------------------------

def labels_file(tmp_path, n: int, name: str = "labels.json"):
    cases = (load_split("test") * (n // 64 + 1))[:n]
    path = tmp_path / name
    path.write_text(json.dumps(cases))
    return path


def test_sample_streams_batches_and_writes_a_mosaic(tiny_pipeline_dir, tmp_path, capsys, monkeypatch):
    sizes = []
    call = ConditionalDDPMPipeline.__call__

    def spy(self, labels=None, *args, **kwargs):
        sizes.append(len(labels))
        return call(self, labels, *args, **kwargs)

    monkeypatch.setattr(ConditionalDDPMPipeline, "__call__", spy)
    out = tmp_path / "many.png"
    assert run(["sample", "--weights", tiny_pipeline_dir, "--labels-file", labels_file(tmp_path, 70),
                "--steps", 1, "--batch-size", 16, "--out", out]) == 0
    assert sizes == [16, 16, 16, 16, 6]
    assert out.read_bytes()[:8] == PNG
    assert f"wrote 70 images to {out}" in capsys.readouterr().out


def test_evaluate_in_batches_matches_one_batch(tiny_pipeline_dir, evaluator_dir):
    pipe, judge = load_pipeline(tiny_pipeline_dir), load_evaluator(evaluator_dir)
    whole = evaluate(pipe, "new_test", num_inference_steps=2, evaluator=judge, limit=12, batch_size=64)
    parts = evaluate(pipe, "new_test", num_inference_steps=2, evaluator=judge, limit=12, batch_size=5,
                     keep_images=7)
    assert len(whole["images"]) == 12 and len(parts["images"]) == 7
    assert len(parts["cases"]) == 12 and 0 <= parts["accuracy"] <= 1
    none = evaluate(pipe, "new_test", num_inference_steps=2, evaluator=judge, limit=12, batch_size=5, keep_images=0)
    assert none["images"].shape == (0, 16, 16, 3)
    assert none["accuracy"] == parts["accuracy"]  # the same seed and batches: the same images


PEAK_RSS = """
import resource, sys
from condiff.tools.commands import main
main(sys.argv[1:])
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(argv) -> float:
    """Peak resident memory of ``python -m condiff ARGV`` run in its own process, in MB."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(condiff.__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(re.search(r"peak_rss_kb (\d+)", done.stdout).group(1)) / 1024


def test_evaluate_peak_memory_does_not_grow_with_the_scenes(evaluator_dir, tmp_path):
    from diffusers import DDPMScheduler

    from condiff.models import build_models

    torch.manual_seed(0)  # 32 x 32 with wider blocks than the tiny fixture: images cost memory worth measuring
    unet, encoder = build_models("time_sum", image_size=32, block_out_channels=(32, 64))
    ConditionalDDPMPipeline(unet=unet, scheduler=DDPMScheduler(), label_encoder=encoder).save_pretrained(tmp_path / "p")
    peaks = {n: peak_rss_mb(["evaluate", "--weights", tmp_path / "p", "--evaluator", evaluator_dir, "--steps", 1,
                             "--batch-size", 16, "--labels-file", labels_file(tmp_path, n, f"{n}.json")])
             for n in (16, 512)}
    # 32 times the scenes: one batch of 512 took 870 MB more (407 vs 1,278 MB before batching); 16 at a time the same.
    assert peaks[512] < peaks[16] + 40, peaks


# ---------------------------------------------------------------------------------------------
# Case 3: silent garbage (non-finite or huge guidance, negative or zero steps)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["sample", "evaluate"])
@pytest.mark.parametrize("option, value, fragment", [
    ("--guidance-scale", "nan", "argument --guidance-scale: must be a finite number in [0, 50]"),
    ("--guidance-scale", "inf", "argument --guidance-scale: must be a finite number in [0, 50]"),
    ("--guidance-scale", "1e9", "got '1e9'"),
    ("--steps", "-5", "argument --steps: must be a whole number from 1 to 1,000"),
    ("--steps", "0", "got '0'"),
])
def test_no_silent_garbage(tiny_pipeline_dir, evaluator_dir, tmp_path, capsys, no_sampling,
                                 command, option, value, fragment):
    extra = ["--labels", "red cube", "--out", tmp_path / "x.png"] if command == "sample" else \
        ["--evaluator", evaluator_dir]
    check_error([command, "--weights", tiny_pipeline_dir, *extra, option, value], capsys, fragment)
    assert not (tmp_path / "x.png").exists()


def test_library_calls_refuse_the_same_values(tiny_pipeline_dir, evaluator_dir, no_sampling):
    pipe, judge = load_pipeline(tiny_pipeline_dir), load_evaluator(evaluator_dir)
    with pytest.raises(ValueError, match="num_inference_steps must be a whole number from 1 to 1000"):
        evaluate(pipe, "test", num_inference_steps=0, evaluator=judge)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number"):
        evaluate(pipe, "test", guidance_scale=float("nan"), num_inference_steps=2, evaluator=judge)


def test_pipeline_call_checks_its_arguments(tiny_pipeline_dir):
    pipe = load_pipeline(tiny_pipeline_dir)
    with pytest.raises(ValueError, match="num_inference_steps must be a whole number from 1 to 1000"):
        pipe(["red cube"], num_inference_steps=-5)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number, got inf"):
        pipe(["red cube"], num_inference_steps=2, guidance_scale=float("inf"))
    with pytest.raises(ValueError, match="num_images_per_label must be a whole number >= 1, got 0"):
        pipe(["red cube"], num_inference_steps=2, num_images_per_label=0)


# ---------------------------------------------------------------------------------------------
# Case 4: an unconditional model checks the labels it ignores, and says it ignores them
# ---------------------------------------------------------------------------------------------

def test_unconditional_model_checks_labels(unconditional_dir, tmp_path, capsys, no_sampling):
    check_error(["sample", "--weights", unconditional_dir, "--labels", "pink elephant", "--out", tmp_path / "x.png"],
                capsys, "error:", "unknown label 'pink elephant'")


def test_unconditional_model_warns_it_ignores_labels(unconditional_dir, tmp_path, capsys):
    out = tmp_path / "u.png"
    assert run(["sample", "--weights", unconditional_dir, "--labels", "red cube;blue sphere", "--num-images", 3,
                "--steps", 1, "--out", out]) == 0
    captured = capsys.readouterr()
    assert "warning: this model is unconditional: it ignores --labels (2 valid scenes)" in captured.err
    assert f"wrote 3 images to {out}" in captured.out and out.read_bytes()[:8] == PNG


# ---------------------------------------------------------------------------------------------
# Case 5: sample --out writes exactly the file it names, and an unusable path fails first
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, written, note", [
    ("grid", "grid.png", "had no .png suffix: added it"),
    ("folder/", "folder/samples.png", "is a folder: wrote samples.png inside it"),
    ("made", "made/samples.png", "is a folder"),  # an existing folder
    ("a/b/c.png", "a/b/c.png", ""),
])
def test_sample_out_is_the_file_written(tiny_pipeline_dir, tmp_path, capsys, given, written, note):
    (tmp_path / "made").mkdir()
    assert run(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--steps", 1,
                "--out", f"{tmp_path}/{given}"]) == 0
    out = capsys.readouterr().out
    assert f"wrote 1 images to {tmp_path / written}" in out and note in out
    assert (tmp_path / written).read_bytes()[:8] == PNG
    assert not (tmp_path / "folder" / ".png").exists() and not (tmp_path / "made.png").exists()


def test_unusable_out_fails_before_sampling(tiny_pipeline_dir, tmp_path, capsys, no_sampling):
    (tmp_path / "file").write_text("not a folder")
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--out", tmp_path / "file/x.png"],
                capsys, "error: cannot write --out", "file/x.png")
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--out", tmp_path / "x.jpg"],
                capsys, "PNG files only")


# ---------------------------------------------------------------------------------------------
# Case 8: messages, not tracebacks
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, fragment", [
    ("--steps", "0", "argument --steps: must be a whole number from 1"),
    ("--num-images", "0", "argument --num-images: must be a whole number >= 1; got '0'"),
    ("--num-images", "-1", "argument --num-images: must be a whole number >= 1; got '-1'"),
    ("--batch-size", "0", "argument --batch-size: must be a whole number >= 1; got '0'"),
])
def test_bad_counts(tiny_pipeline_dir, tmp_path, capsys, no_sampling, option, value, fragment):
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", option, value,
                 "--out", tmp_path / "x.png"], capsys, fragment)


def test_labels_file_nested_too_deep(tiny_pipeline_dir, tmp_path, capsys, no_sampling):
    path = tmp_path / "deep.json"
    path.write_text('[["red cube"], [["red cube"]]]')
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels-file", path, "--out", tmp_path / "x.png"],
                capsys, f"error: {path} must hold a JSON list of object lists", 'scene 1 is [["red cube"]]')


def test_pipeline_folder_as_evaluator(tiny_pipeline_dir, tmp_path, capsys, no_sampling):
    check_error(["evaluate", "--weights", tiny_pipeline_dir, "--evaluator", tiny_pipeline_dir / "unet"], capsys,
                "holds a UNet2DModel, not an evaluator", "--evaluator")


# ---------------------------------------------------------------------------------------------
# Case 11: a file named like a split is read as the file
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["test", "new_test", "single"])
def test_file_named_like_a_split(tiny_pipeline_dir, evaluator_dir, tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text('[["red cube"], ["blue sphere"], ["gray cylinder"]]')
    assert load_split(name) == [["red cube"], ["blue sphere"], ["gray cylinder"]]
    assert run(["evaluate", "--weights", tiny_pipeline_dir, "--evaluator", evaluator_dir, "--labels-file", name,
                "--steps", 1]) == 0
    assert re.search(r"^images: 3 ", capsys.readouterr().out, flags=re.MULTILINE)


# ---------------------------------------------------------------------------------------------
# Case 12: every message names the option, what was given and what is allowed; echoes are short
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, fragment", [
    ("--batch-size", "0", "argument --batch-size: must be a whole number >= 1; got '0'"),
    ("--max-steps", "0", "argument --max-steps: must be a whole number >= 1; got '0'"),
    ("--stop-after", "-3", "argument --stop-after: must be a whole number >= 1; got '-3'"),
    ("--seed", "-1", "argument --seed: must be a whole number from 0 to 2**32 - 1"),
    ("--seed", str(2**70), "argument --seed: must be a whole number from 0 to 2**32 - 1"),
    ("--learning-rate", "nan", "argument --learning-rate: must be a finite number in (0, 1]"),
    ("--snr-gamma", "0", "argument --snr-gamma: must be a finite number in (0, 1000]"),
    ("--snr-gamma", "inf", "argument --snr-gamma: must be a finite number in (0, 1000]"),
    ("--timestep-sampling", "low_noise", "argument --timestep-sampling: invalid choice: 'low_noise'"),
    ("--label-hidden-dim", "0", "argument --label-hidden-dim: must be a whole number >= 1; got '0'"),
])
def test_train_options_are_named(tmp_path, capsys, option, value, fragment):
    check_error(["train", "time_sum", "--out", tmp_path / "run", option, value], capsys, fragment)
    assert not (tmp_path / "run").exists()


def test_a_label_mlp_width_for_a_model_without_one_is_refused(tmp_path, capsys):
    check_error(["train", "concat", "--out", tmp_path / "run", "--label-hidden-dim", "768"], capsys,
                "label_hidden_dim=768: recipe 'concat' (concat) has no label MLP with a hidden layer; "
                "only the time_sum and cross_attention modes have one")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["-1", str(2**70)])
def test_sample_seed_range(tiny_pipeline_dir, tmp_path, capsys, no_sampling, value):
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "red cube", "--seed", value,
                 "--out", tmp_path / "x.png"], capsys, "argument --seed: must be a whole number from 0 to 2**64 - 1")


def test_empty_labels(tiny_pipeline_dir, tmp_path, capsys, no_sampling):
    err = check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", "", "--out", tmp_path / "x.png"],
                      capsys, "--labels '' holds no scenes")
    assert "give --labels or --labels-file" not in err


def test_non_utf8_file_is_named(tiny_pipeline_dir, tmp_path, capsys, no_sampling):
    path = tmp_path / "latin1.json"
    path.write_bytes('[["red cube", "blue sphère"]]'.encode("latin-1"))
    check_error(["sample", "--weights", tiny_pipeline_dir, "--labels-file", path, "--out", tmp_path / "x.png"],
                capsys, f"error: {path} is not UTF-8 text")


def test_long_input_is_not_echoed_back(tiny_pipeline_dir, tmp_path, capsys, no_sampling):
    huge = "red cube," * 15_000  # 135 KB
    err = check_error(["sample", "--weights", tiny_pipeline_dir, "--labels", huge + "pink cube",
                       "--out", tmp_path / "x.png"], capsys, "error:")
    assert len(err) < 3000, len(err)
    err = check_error(["sample", "--weights", tiny_pipeline_dir, "--scheduler", "x" * 100_000], capsys, "invalid")
    assert len(err) < 3000, len(err)


def test_unconditional_model_cannot_be_evaluated(unconditional_dir, evaluator_dir, capsys, no_sampling):
    check_error(["evaluate", "--weights", unconditional_dir, "--evaluator", evaluator_dir], capsys,
                "this pipeline is unconditional")
