"""``python -m condiff train-all``: the GPU session's one command, run end to end in its quick mode on the CPU.

The quick run trains the five notebook models as tiny 16x16 UNets for 4 steps, scores them on 4
cases per split and packages them; the tests check what a GPU session would bring back: every file
present, under 16 MB, at most 8 of them, and archives that unpack into loadable pipelines that
carry their best guidance.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from condiff.pipeline import load_pipeline
from condiff.tools import train_all as driver
from condiff.tools.cli import main

FIVE = ("time_sum_cosine", "time_sum", "concat", "cross_attention", "unconditional")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick mode through the command line, as a GPU session would call it."""
    root = tmp_path_factory.mktemp("train_all")
    main(["train-all", "--budget-minutes", "2", "--quick", "--limit", "2", "--out", str(root / "out"),
          "--work", str(root / "work"), "--train-option", "channels_last=false", "--samplers", "ddim-5,ddpm-101"])
    return root


def test_quick_run_brings_back_few_small_files(quick_run):
    out = quick_run / "out"
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["summary.json", "train-all.log", *(f"{name}.tar" for name in FIVE)])
    assert len(files) <= 8 and all((out / f).stat().st_size < 16e6 for f in files)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["mode"] == "models" and summary["files"] == files
    assert "finished in" in (out / "train-all.log").read_text()
    # The models that notebooks compare saw the same number of images.
    seen = {name: summary["runs"][name]["training"]["images_seen"] for name in FIVE}
    assert seen["time_sum"] == seen["concat"] == seen["time_sum_cosine"] > 0
    # Sweep and sampler table with top-k and exact-scene accuracy; curves of the snapshots.
    entry = summary["samplers"]["models"]["time_sum_cosine"]
    assert [r["guidance_scale"] for r in entry["sweep"]] == [1.0, 3.0]
    keys = ("test", "new_test", "test_exact_scene", "new_test_exact_scene")
    assert all(0 <= r[k] <= 1 for r in entry["sweep"] for k in keys)
    best = entry["best_guidance"]
    assert sorted((r["sampler"], r["guidance_scale"]) for r in entry["samplers"]) == sorted(
        [("ddim", 1.0), ("ddim", best), ("ddpm", best)] if best != 1.0 else [("ddim", 1.0), ("ddpm", 1.0)])
    assert "single_exact_scene" in summary["samplers"]["models"]["cross_attention"]["sweep"][0]
    assert "unconditional" not in summary["samplers"]["models"]
    assert [r["step"] for r in summary["curves"]["time_sum_cosine"]] == [2, 4]
    assert summary["plan"]["relative_cost"]["time_sum_cosine"] == 1.0


def test_archives_unpack_into_pipelines_with_their_best_guidance(quick_run, tmp_path):
    summary = json.loads((quick_run / "out" / "summary.json").read_text())
    folders = driver.unpack(quick_run / "out", tmp_path)
    assert sorted(f.name for f in folders) == sorted(FIVE)
    for folder in folders:
        assert not list(folder.glob("checkpoint*")) and not (folder / "snapshots").exists()
        pipe = load_pipeline(folder)
        best = summary["runs"][folder.name].get("best_guidance", 1.0)
        assert pipe.config.guidance_scale == best
        assert json.loads((folder / "training.json").read_text())["steps"] == 4


def test_ship_archive_fills_a_weights_folder(quick_run, tmp_path):
    from condiff.runinfo import weights_digest

    weights = tmp_path / "weights"
    weights.mkdir()
    shipped = driver.ship_archive(quick_run / "out", weights)
    assert sorted(shipped) == sorted(FIVE)
    samplers = json.loads((weights / "samplers.json").read_text())
    assert samplers["digests"]["time_sum"] == weights_digest(weights / "time_sum")
    assert set(json.loads((weights / "training_curves.json").read_text())["curves"]) == {"time_sum_cosine", "time_sum"}
    assert load_pipeline(weights / "concat").config.sampler == "ddim"


def test_the_same_command_again_resumes_and_skips_finished_runs(quick_run):
    summary = driver.train_all(quick_run / "out", 2, work=quick_run / "work", quick=True, limit=2)
    assert summary["finished"]
    assert summary["timeline"][-1]["seconds"] < 30  # nothing trained or scored again
    with pytest.raises(ValueError, match="holds runs of other settings"):
        driver.train_all(quick_run / "out", 2, work=quick_run / "work", quick=True, limit=2, max_steps=6,
                         use_variants=("min_snr",))


def test_variant_comparison_reports_accuracy_against_images(tmp_path):
    summary = driver.train_all(tmp_path / "out", 2, work=tmp_path / "work", quick=True, limit=2,
                               variants=("scale_shift", "min_snr"))
    assert summary["mode"] == "variants" and set(summary["curves"]) == {"base", "scale_shift", "min_snr"}
    assert summary["variant_changes"] == {"scale_shift": {"time_scale_shift": "scale_shift"},
                                          "min_snr": {"snr_gamma": 5.0}}
    assert summary["runs"]["scale_shift"]["training"]["recipe"]["time_scale_shift"] == "scale_shift"
    assert "| images seen | base | scale_shift | min_snr |" in summary["variant_table"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["summary.json", "train-all.log"]


def test_large_archives_are_split_below_the_file_limit(tmp_path, monkeypatch, tiny_pipeline_dir):
    run = tmp_path / "runs" / "time_sum"
    shutil.copytree(tiny_pipeline_dir, run)
    (run / "training.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(driver, "PART_BYTES", 50_000)
    files = driver.pack(run, "time_sum", out)
    assert len(files) > 1 and all((out / f).stat().st_size <= 50_000 for f in files)
    (out / "summary.json").write_text(json.dumps({"runs": {"time_sum": {"files": files}}}))
    (folder,) = driver.unpack(out, tmp_path / "unpacked")
    assert load_pipeline(folder).unet.config.sample_size == 16


def test_fp16_weights_load_into_float32_pipelines_at_half_the_size(tmp_path, tiny_pipeline_dir):
    run = tmp_path / "run"
    shutil.copytree(tiny_pipeline_dir, run)
    before = load_pipeline(run)
    size = (run / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    driver.to_fp16(run)
    assert (run / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size < 0.6 * size
    after = load_pipeline(run)
    assert after.unet.dtype == torch.float32
    for a, b in zip(before.unet.parameters(), after.unet.parameters()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)


def test_bad_arguments_fail_before_any_work(tmp_path):
    for kwargs, message in [({"models": ("time_sum", "film")}, "unknown model 'film'"),
                            ({"variants": ("bigger",)}, "unknown variant 'bigger'"),
                            ({"work": tmp_path}, "must not be inside --work"),
                            ({"weights_dtype": "int8"}, "unknown weights dtype 'int8'")]:
        with pytest.raises(ValueError, match=message):
            driver.train_all(tmp_path / "out", 1, **{"work": tmp_path / "work", **kwargs})
    assert not (tmp_path / "out").exists()


def test_plan_splits_the_time_by_relative_cost():
    recipes = {"a": driver.get_recipe("time_sum"), "b": driver.get_recipe("concat")}
    plan = {"images_per_second": 1000.0, "call_overhead_s": 10.0, "relative_cost": {"a": 1.0, "b": 3.0}}
    # 120 s, 2 calls of 10 s overhead: 100 s for steps of 256 images at 1000 + 1000/3 images/s.
    assert driver.steps_for(120, ["a", "b"], recipes, plan) == int(100 / (4 * 256 / 1000))
    assert driver.steps_for(5, ["a"], recipes, plan) == 0
    assert driver._whole_snapshots(1003, 4) == 1000 and driver._whole_snapshots(3, 4) == 3


def test_a_failing_run_is_logged_and_the_others_go_on(tmp_path):
    summary = driver.train_all(tmp_path / "out", 1, work=tmp_path / "work", quick=True, limit=1,
                               models=("time_sum", "unconditional"), images_per_second=100.0,
                               train_options={"no_such_argument": 1})
    assert summary["finished"] and not any(r.get("done") for r in summary["runs"].values())
    assert all("no_such_argument" in r["error"] for r in summary["runs"].values())
    assert "going on with the next run" in (tmp_path / "out" / "train-all.log").read_text()


@pytest.mark.parametrize("option, message", [("--train-option=workers", "NAME=VALUE"),
                                             ("--samplers=ddim", "SAMPLER-STEPS")])
def test_bad_command_line_options_exit_with_a_clear_error(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as exit:
        main(["train-all", "--budget-minutes", "1", "--quick", "--out", str(tmp_path / "out"), option])
    assert exit.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_help_names_the_budget_and_the_variants(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train-all", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit.value.code == 0 and "--budget-minutes" in out and "scale_shift, min_snr, wide, attn16" in out


def test_a_calibrated_then_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """train-all's calibration (a few steps inside the LR warm-up, planned max_steps unknown) loses nothing."""
    from tiny import TINY

    from condiff.train import train

    def history(out):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in json.loads((out / "history.json").read_text())]

    train(TINY.with_overrides(max_steps=100), tmp_path / "a", stop_after=1, progress=False)  # calibration
    train(TINY, tmp_path / "a", progress=False)  # the planned 4 steps
    train(TINY, tmp_path / "b", progress=False)
    assert history(tmp_path / "a") == history(tmp_path / "b")


@pytest.mark.parametrize("variant", ["scale_shift", "min_snr", "wide", "attn16"])
def test_each_variant_changes_one_thing(variant):
    from dataclasses import asdict

    from condiff.data.labels import to_label_batch
    from condiff.models import build_models, predict_noise

    base = driver.get_recipe("time_sum_cosine").with_overrides(image_size=16, block_out_channels=(8, 16))
    changed = driver.variant(base, variant)
    assert {k for k, v in asdict(changed).items() if asdict(base)[k] != v} == set(driver.VARIANTS[variant](base))
    for mode in ("time_sum", "cross_attention"):
        unet, encoder = build_models(mode, **changed.model_kwargs())
        x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 500])
        with torch.no_grad():
            assert predict_noise(unet, encoder, x, t, to_label_batch(["red cube", "blue sphere"])).shape == x.shape
    if variant == "attn16":
        assert unet.config.down_block_types == ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    with pytest.raises(ValueError, match="unknown variant 'bigger'"):
        driver.variant(base, "bigger")


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
