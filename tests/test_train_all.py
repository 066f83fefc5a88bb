"""``python -m condiff train-all``: every model trained, scored and recorded, run end to end in quick mode.

The quick run trains the five notebook models as ``Recipe.tiny()`` models for 4 steps and scores them
on 2 cases per split; the tests check what a maintainer gets: one loadable run folder per model with its
best guidance stored, a summary with the sampler tables and curves, a resumable command, and
``ship_all`` filling a weights folder.
"""
from __future__ import annotations

import json
import shutil

import pytest

from condiff.pipeline import load_pipeline
from condiff.tools import train_all as driver
from condiff.tools.cli import main

FIVE = ("time_sum_cosine", "time_sum", "concat", "cross_attention", "unconditional")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick mode through the command line."""
    out = tmp_path_factory.mktemp("train_all") / "out"
    main(["train-all", "--quick", "--limit", "2", "--out", str(out), "--samplers", "ddim-5,ddpm-20"])
    return out


def test_quick_run_trains_scores_and_records_every_model(quick_run):
    summary = json.loads((quick_run / "summary.json").read_text())
    assert summary["finished"] and all(summary["runs"][name]["done"] for name in FIVE)
    # The models that notebooks compare saw the same number of images.
    seen = {name: summary["runs"][name]["training"]["images_seen"] for name in FIVE}
    assert seen["time_sum"] == seen["concat"] == seen["time_sum_cosine"] > 0
    # Sweep and sampler table with top-k and exact-scene accuracy; curves of the snapshots.
    entry = summary["samplers"]["models"]["time_sum_cosine"]
    assert [r["guidance_scale"] for r in entry["sweep"]] == [1.0, 3.0]
    keys = ("test", "new_test", "test_exact_scene", "new_test_exact_scene")
    assert all(0 <= r[k] <= 1 for r in entry["sweep"] for k in keys)
    ws = sorted({1.0, entry["best_guidance"]})
    assert sorted((r["sampler"], r["guidance_scale"]) for r in entry["samplers"]) == sorted(
        (s, w) for s in ("ddim", "ddpm") for w in ws)
    assert "single_exact_scene" in summary["samplers"]["models"]["cross_attention"]["sweep"][0]
    assert "unconditional" not in summary["samplers"]["models"]
    assert set(summary["curves"]) == {"time_sum_cosine", "time_sum"}
    assert [r["step"] for r in summary["curves"]["time_sum_cosine"]] == [2, 4]


def test_each_model_folder_loads_with_its_best_guidance(quick_run):
    summary = json.loads((quick_run / "summary.json").read_text())
    for name in FIVE:
        pipe = load_pipeline(quick_run / name)
        assert pipe.config.guidance_scale == summary["runs"][name].get("best_guidance", 1.0)
        assert json.loads((quick_run / name / "training.json").read_text())["steps"] == 4


def test_ship_all_fills_a_weights_folder(quick_run, tmp_path):
    from condiff.runinfo import weights_digest

    weights = tmp_path / "weights"
    weights.mkdir()
    assert sorted(driver.ship_all(quick_run, weights)) == sorted(FIVE)
    samplers = json.loads((weights / "samplers.json").read_text())
    assert samplers["digests"]["time_sum"] == weights_digest(weights / "time_sum")
    assert set(json.loads((weights / "training_curves.json").read_text())["curves"]) == {"time_sum_cosine", "time_sum"}
    assert load_pipeline(weights / "concat").config.sampler == "ddim"
    assert not list((weights / "time_sum").glob("checkpoint*")) and not (weights / "time_sum" / "snapshots").exists()


def test_the_same_command_again_skips_finished_models(quick_run):
    before = {p: p.read_bytes() for p in quick_run.rglob("training.json")}
    summary = driver.train_all(quick_run, quick=True, limit=2, samplers=(("ddim", 5), ("ddpm", 20)))
    assert summary["finished"] and all(summary["runs"][name]["done"] for name in FIVE)
    assert {p: p.read_bytes() for p in before} == before  # nothing trained again


def test_quick_unconditional_model_alone(tmp_path):
    """Issue 17 row 9: ``--quick --models unconditional`` ran into an IndexError."""
    main(["train-all", "--quick", "--models", "unconditional", "--out", str(tmp_path / "out")])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["finished"] and summary["runs"]["unconditional"]["done"]
    assert "samplers" not in summary  # nothing to score against labels
    load_pipeline(tmp_path / "out" / "unconditional")


def test_a_failing_model_is_recorded_and_the_others_go_on(tmp_path):
    summary = driver.train_all(tmp_path / "out", quick=True, models=("time_sum", "unconditional"),
                               train_options={"no_such_argument": 1})
    assert summary["finished"] and not any(r.get("done") for r in summary["runs"].values())
    assert all("no_such_argument" in r["error"] for r in summary["runs"].values())


@pytest.mark.parametrize("option, value, message", [
    ("--max-steps", "nan", "--max-steps: must be a whole number >= 1"),
    ("--max-steps", "0", "--max-steps: must be a whole number >= 1"),
    ("--batch-size", "-8", "--batch-size: must be a whole number >= 1"),
    ("--learning-rate", "nan", "--learning-rate: must be a finite number in (0, 1]"),
    ("--learning-rate", "inf", "--learning-rate: must be a finite number in (0, 1]"),
    ("--snapshots", "0", "--snapshots: must be a whole number >= 1"),
    ("--limit", "0", "--limit: must be a whole number >= 1"),
    ("--guidance-scales", "1,nan", "--guidance-scales: must be a finite number in [0, 50]"),
    ("--guidance-scales", "1,51", "--guidance-scales: must be a finite number in [0, 50]"),
    ("--models", "time_sum,film", "--models: takes a comma-separated subset of"),
    ("--samplers", "ddim", "--samplers: takes SAMPLER-STEPS items"),
    ("--samplers", "euler-25", "--samplers: takes SAMPLER-STEPS items"),
    ("--train-option", "log_every", "NAME=VALUE"),
], ids=lambda x: x if isinstance(x, str) and x.startswith("--") else None)
def test_bad_numbers_and_names_exit_with_a_clear_error_before_any_work(tmp_path, capsys, option, value, message):
    """Issue 17 row 8: every number train-all takes is finite and in range (``nan`` and ``inf`` included)."""
    with pytest.raises(SystemExit) as exit:
        main(["train-all", "--quick", "--out", str(tmp_path / "out"), f"{option}={value}"])
    assert exit.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setting, message", [
    ({"max_steps": float("nan")}, "max_steps must be a whole number"),
    ({"learning_rate": float("inf")}, "learning_rate must be a finite number"),
    ({"snapshots": 0}, "snapshots must be a whole number >= 1"),
    ({"guidance_scales": (1.0, float("nan"))}, "each guidance scale must be a finite number from 0 to 50"),
    ({"models": ("time_sum", "film")}, "unknown model(s) 'film'"),
    ({"models": ()}, "unknown model(s) (none given)"),
])
def test_bad_settings_of_the_function_fail_before_any_work(tmp_path, setting, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        driver.train_all(tmp_path / "out", quick=True, **setting)
    assert not (tmp_path / "out").exists()


def test_store_sampling_rewrites_model_index_only(tmp_path, tiny_pipeline_dir):
    shutil.copytree(tiny_pipeline_dir, tmp_path, dirs_exist_ok=True)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "model_index.json"}
    driver.store_sampling(tmp_path, 3.0, "ddim", 25)
    assert {p: p.read_bytes() for p in before} == before
    loaded = load_pipeline(tmp_path)
    assert (loaded.config.guidance_scale, loaded.config.sampler, loaded.config.num_inference_steps) == (3.0, "ddim", 25)
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        driver.store_sampling(tmp_path, 3.0, "euler", 25)
    with pytest.raises(ValueError, match="guidance_scale must be between 0 and 50"):
        driver.store_sampling(tmp_path, -1, "ddim", 25)
    with pytest.raises(FileNotFoundError, match="no pipeline at"):
        driver.store_sampling(tmp_path / "nothing", 3.0)
    assert load_pipeline(tmp_path).config.guidance_scale == 3.0  # a refused call changed nothing
