import pytest
from tiny import TINY

from condiff.tools.benchmark import report


def test_quick_report_shows_fp32_and_bf16_training_and_the_samplers():
    text = report(quick=True)
    assert "| condiff train, fp32 |" in text and "| condiff train, bf16 |" in text and "| ddim-5 |" in text


def test_throughput_times_the_recipes_own_model(tmp_path):
    """The naive loop trains the model ``train`` builds from the recipe (all of ``model_kwargs``)."""
    from condiff.tools.benchmark import throughput
    from condiff.train import train

    recipe = TINY.with_overrides(attention_levels=2, time_scale_shift="scale_shift", label_hidden_dim=24)
    result = throughput(recipe=recipe, batch_size=4, steps=1)
    assert result["parameters"] == train(recipe, tmp_path, progress=False)["parameters"]
    assert result["naive_images_per_s"] > 0 and result["condiff_images_per_s"] > 0


def _tiny_run(tmp_path):
    from condiff.train import train

    tiny = TINY
    train(tiny, tmp_path / "runs" / "time_sum", progress=False, snapshot_every=tiny.checkpoint_every)
    return tmp_path / "runs", tiny


def test_training_curve_scores_every_snapshot(tmp_path):
    from condiff.tools.benchmark import training_curve

    runs, tiny = _tiny_run(tmp_path)
    rows = training_curve(runs / "time_sum", steps=2, limit=2)
    assert [r["step"] for r in rows] == list(range(tiny.checkpoint_every, tiny.max_steps + 1, tiny.checkpoint_every))
    assert all(0 <= r["test"] <= 1 and 0 <= r["new_test"] <= 1 and r["train_minutes"] >= 0 for r in rows)
    assert all(0 <= r["test_exact_scene"] <= 1 and 0 <= r["new_test_exact_scene"] <= 1 for r in rows)
    assert rows[-1]["images_seen"] == tiny.max_steps * tiny.batch_size


def test_a_warm_restarts_curve_is_kept_in_weights_and_shown(tmp_path):
    """``benchmark --curve RUN --record-leg``: the curve of a run that continued shipped weights, by run."""
    import json
    import shutil

    from condiff import WEIGHTS_DIR
    from condiff.tools.benchmark import record_warm_restart, samplers_markdown, training_curve
    from condiff.tools.results import title
    from condiff.train import train

    runs, tiny = _tiny_run(tmp_path)
    with pytest.raises(ValueError, match="not a warm restart.*--init-from"):
        record_warm_restart(runs / "time_sum", [], tmp_path)  # the first run of a model: nothing to record
    train(tiny, runs / "again", progress=False, snapshot_every=tiny.max_steps, init_from=runs / "time_sum")
    rows = training_curve(runs / "again", steps=2, limit=2)
    assert rows[-1]["images_seen_total"] == 2 * tiny.max_steps * tiny.batch_size  # both runs' images
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("samplers.json", "training_curves.json"):
        shutil.copy(WEIGHTS_DIR / name, weights / name)
    record_warm_restart(runs / "again", rows, weights)
    record_warm_restart(runs / "again", rows, weights)  # scored again: replaced, not added
    kept = json.loads((weights / "training_curves.json").read_text())
    assert kept["warm_restarts"][tiny.name] == {"2": {"command": "", "note": "", "rows": rows}}
    # Another run from the same weights (the first held back): kept beside it, not written over it.
    train(tiny, runs / "other", progress=False, snapshot_every=tiny.max_steps, init_from=runs / "time_sum",
          note="another try")
    record_warm_restart(runs / "other", rows[:1], weights)
    record_warm_restart(runs / "other", rows[:1], weights)  # scored again: replaced
    both = json.loads((weights / "training_curves.json").read_text())["warm_restarts"][tiny.name]
    assert list(both) == ["2", "2b"] and both["2"]["rows"] == rows and both["2b"]["note"] == "another try"
    assert kept["curves"] == json.loads((WEIGHTS_DIR / "training_curves.json").read_text())["curves"]  # kept
    text = samplers_markdown(weights)
    assert f"| {title(tiny.name)} | 2 | {tiny.max_steps:,} | {2 * tiny.max_steps * tiny.batch_size:,} |" in text


def test_sampler_table_sweeps_guidance_then_compares_samplers(tmp_path, capsys):
    from condiff.tools.benchmark import print_last_row, sampler_table

    runs, _ = _tiny_run(tmp_path)
    saved = []
    table = sampler_table(runs, guidance_scales=(1.0, 2.0), samplers=(("ddim", 2), ("dpm++", 2)), limit=2,
                          on_row=lambda r: saved.append(len(r["models"]["time_sum"]["samplers"])))
    entry = table["models"]["time_sum"]
    assert [r["guidance_scale"] for r in entry["sweep"]] == [1.0, 2.0]
    assert entry["best_guidance"] in (1.0, 2.0)
    expected = 2 * len({1.0, entry["best_guidance"]})
    assert len(entry["samplers"]) == expected and saved[-1] == expected and len(saved) == 2 + expected
    assert {(r["sampler"], r["steps"]) for r in entry["samplers"]} == {("ddim", 2), ("dpm++", 2)}
    print_last_row(table)  # the command's progress line: the row just scored
    last = entry["samplers"][-1]
    assert capsys.readouterr().out.startswith(f"time_sum: {last['sampler']}-2, w = {last['guidance_scale']:g}: test ")


def test_throughput_command_times_both_loops_in_one_run(tmp_path):
    """``benchmark --json FILE``: the seed tutorials' loop against condiff's, same model and batch."""
    import json

    from condiff.tools.cli import main

    out = tmp_path / "throughput.json"
    main(["benchmark", "--quick", "--json", str(out)])
    result = json.loads(out.read_text())
    assert {"device", "hardware", "batch_size", "naive_images_per_s", "condiff_images_per_s", "ratio"} <= set(result)
    assert result["device"] == "cpu" and result["quick"] and result["batch_size"] == 8
    assert result["naive_images_per_s"] > 0 and result["condiff_images_per_s"] > 0
    assert result["scenes_per_s"] > 0
    assert abs(result["ratio"] - result["condiff_images_per_s"] / result["naive_images_per_s"]) < 0.01


@pytest.mark.parametrize("setting", [{"device": "tpu"}, {"steps": 0}])
def test_throughput_refuses_bad_settings(setting):
    from condiff.tools.benchmark import throughput

    with pytest.raises(ValueError, match=next(iter(setting))):
        throughput(**setting)


def test_merged_sampler_table_keeps_where_each_model_was_measured(tmp_path):
    """A model re-measured on another machine replaces only its own entry, and the table says where it was."""
    import json

    from condiff.tools.benchmark import merge_sampler_tables, samplers_markdown

    def row(w, acc):
        return {"sampler": "ddim", "steps": 25, "guidance_scale": w, "test": acc, "new_test": acc}

    def table(hardware, settings, names, acc):
        return {"hardware": hardware, "device": "x", "settings": settings,
                "digests": {n: f"{hardware}-{n}" for n in names},
                "models": {n: {"sweep": [row(1.0, acc), row(2.0, acc)], "best_guidance": 1.0,
                               "samplers": [row(1.0, acc)]} for n in names}}

    earlier = {**table("GPU A", "full splits, old judge", ["time_sum", "object_tokens"], 0.5),
               "measured_by": "five runs at once on GPU A"}
    merged = merge_sampler_tables(earlier, table("CPU B", "full splits, new judge", ["object_tokens"], 0.8))
    assert merged["models"]["time_sum"] == earlier["models"]["time_sum"] and merged["hardware"] == "GPU A"
    assert merged["models"]["object_tokens"]["hardware"] == "CPU B"
    assert merged["models"]["object_tokens"]["settings"] == "full splits, new judge"
    assert merged["digests"] == {"time_sum": "GPU A-time_sum", "object_tokens": "CPU B-object_tokens"}
    (tmp_path / "samplers.json").write_text(json.dumps(merged))
    text = samplers_markdown(tmp_path)
    assert "measured on GPU A; full splits, old judge." in text  # the file's own machine heads the table
    assert "| Multi-label, one token per object\\* | 1 | 0.800 / 0.800 |" in text
    assert "\n\\* measured on CPU B; full splits, new judge." in text  # escaped: not a Markdown list item
    assert "| Multi-label, time-sum (linear) | 1 | 0.500 / 0.500 |" in text

    # Every model of GPU A measured again elsewhere: the file names the latest machine, the other keeps its own.
    again = merge_sampler_tables(merged, table("CPU C", "full splits, new judge", ["time_sum"], 0.6))
    assert again["hardware"] == "CPU C" and "hardware" not in again["models"]["time_sum"]
    assert "measured_by" not in again  # it spoke of GPU A
    assert again["models"]["object_tokens"]["hardware"] == "CPU B"
    (tmp_path / "samplers.json").write_text(json.dumps(again))
    text = samplers_markdown(tmp_path)
    assert "measured on CPU C; full splits, new judge." in text and "GPU A" not in text
    assert "\n\\* measured on CPU B; full splits, new judge." in text


def test_merge_needs_an_earlier_table(tmp_path, capsys):
    from test_cli import check_error

    check_error(["benchmark", "--samplers", "weights", "--merge"], capsys, "--merge takes --samplers", "--json")
    (tmp_path / "x.json").write_text("{}")
    check_error(["benchmark", "--samplers", "weights", "--merge", "--json", tmp_path / "x.json"], capsys,
                "is not a sampler table")
    check_error(["benchmark", "--samplers", "weights", "--models", "unconditional"], capsys,
                "--models", "object_tokens")
