"""The recipe comparison (``python -m condiff compare``): equal images per variant, scored snapshots, resume."""
from __future__ import annotations

import functools
import json

import pytest

import condiff.tools.compare as compare
from condiff.evaluate import load_evaluator
from condiff.runinfo import hardware
from condiff.tools.readme import COMPARE_MARKERS, update_compare_table


@pytest.fixture
def tiny_compare(monkeypatch, evaluator_dir):
    """The driver on a tiny baseline (16x16, batch 8), scoring 2 cases per split with 2 DDIM steps; counts scorings."""
    calls, evaluate = [], compare.evaluate

    def counted(pipeline, split, **kwargs):
        calls.append(split)
        return evaluate(pipeline, split, **kwargs, limit=2)

    tiny = compare.BASELINE.with_overrides(image_size=16, block_out_channels=(8, 16), batch_size=8, warmup_steps=2)
    monkeypatch.setattr(compare, "BASELINE", tiny)
    monkeypatch.setattr(compare, "evaluate", counted)
    monkeypatch.setattr(compare, "STEPS", 2)
    monkeypatch.setattr(compare, "load_evaluator", functools.partial(load_evaluator, evaluator_dir))
    return calls


def test_unknown_variant_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown variant 'nosuch'; allowed: object_tokens, baseline"):
        compare.compare(tmp_path / "out", ("baseline", "nosuch"))
    assert not (tmp_path / "out").exists()


def test_variants_train_equal_images_and_resume_without_rescoring(tmp_path, tiny_compare):
    out = tmp_path / "runs"
    scores = compare.compare(out, ("baseline", "object_tokens"), images=128, snapshot_images=64)
    for name in ("baseline", "object_tokens"):
        assert set(scores["runs"][name]) == {"64", "128"}  # a snapshot scored at each 64 images
        row = scores["runs"][name]["128"]
        assert 0 <= row["test"] <= 1 and 0 <= row["new_test_exact_scene"] <= 1
        assert scores["training"][name]["images_seen"] == 128
    assert json.loads((out / "object_tokens" / "training.json").read_text())["recipe"]["mode"] == "object_tokens"
    assert len(tiny_compare) == 8  # 2 variants x 2 snapshots x 2 splits

    again = compare.compare(out, ("baseline", "object_tokens"), images=128, snapshot_images=64)
    assert len(tiny_compare) == 8  # nothing trained or scored twice
    assert again["runs"] == scores["runs"]
    table = compare.table(again, at=(64, 128))
    assert "| object_tokens | mode=object_tokens, attention_levels=2 |" in table
    assert table.count("\n|") == 3  # header, rule, two variants
    # where each variant was measured
    assert table.endswith(f"Trained and scored: baseline, object_tokens on {hardware()}. "
                          f"Scored on {again['settings']}.")

    # A new machine: the run folders are gone, scores.json is copied over; measured variants are not redone.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    earlier = json.loads((out / "scores.json").read_text())
    earlier_saved = dict(earlier)
    earlier["hardware"] = "CPU: x86_64, 2 threads"  # a file from before each variant named its machine
    for done in earlier["training"].values():
        del done["hardware"]
    (moved / "scores.json").write_text(json.dumps(earlier))
    carried = compare.compare(moved, ("baseline", "object_tokens"), images=128, snapshot_images=64)
    assert len(tiny_compare) == 8 and not (moved / "baseline").exists()
    assert carried["runs"] == scores["runs"]
    assert {t["hardware"] for t in carried["training"].values()} == {"CPU: x86_64, 2 threads"}  # not this one's
    assert "hardware" not in carried and "hardware" not in earlier_saved  # one machine per variant, no more
    assert "baseline, object_tokens on CPU: x86_64, 2 threads." in compare.table(carried, at=(64, 128))
    del earlier["hardware"]  # older still: no machine recorded at all
    (moved / "scores.json").write_text(json.dumps(earlier))
    carried = compare.compare(moved, ("baseline", "object_tokens"), images=128, snapshot_images=64)
    assert "baseline, object_tokens on a machine not recorded." in compare.table(carried, at=(64, 128))


def test_ship_copies_the_scores_and_writes_the_readme_table(tmp_path):
    (tmp_path / "runs").mkdir()
    scores = {"variants": {"baseline": {}}, "runs": {"baseline": {"64000": {
        "test": 0.1, "new_test": 0.2, "test_exact_scene": 0.0, "new_test_exact_scene": 0.05}}}}
    (tmp_path / "runs" / "scores.json").write_text(json.dumps(scores))
    weights = tmp_path / "weights"
    weights.mkdir()
    target = compare.ship(tmp_path / "runs", weights)
    assert json.loads(target.read_text()) == scores
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{COMPARE_MARKERS[0]}\nold\n{COMPARE_MARKERS[1]}\nend\n")
    update_compare_table(compare.table(scores, at=(64_000,)), readme)
    assert "| baseline | - | - | 0.100 / 0.200 | 0.000 / 0.050 |" in readme.read_text()
    with pytest.raises(FileNotFoundError, match="run `python -m condiff compare"):
        compare.ship(tmp_path / "empty", weights)


def test_table_names_the_machine_of_each_speed():
    """Images/s from two machines of one model name (with and without bf16 units) are not shown as comparable."""
    row = {"test": 0.1, "new_test": 0.2, "test_exact_scene": 0.0, "new_test_exact_scene": 0.05}
    speeds = {"baseline": {"images_per_second": 58.7, "hardware": "CPU: A (x86_64), 2 threads"},
              "min_snr5": {"images_per_second": 21.6, "hardware": "CPU: A (x86_64, no bf16 units)"}}
    scores = {"variants": {"baseline": {}, "min_snr5": {"snr_gamma": 5.0}},
              "runs": {"baseline": {"64000": row}, "min_snr5": {"64000": row}}, "images_per_second": speeds}
    table = compare.table(scores, at=(64_000,))
    assert "| baseline | - | 58.7 | 0.100 / 0.200 |" in table and "| min_snr5 | snr_gamma=5.0 | 21.6 |" in table
    assert table.endswith("Images/s timed idle (`--speed`): baseline on CPU: A (x86_64), 2 threads; "
                          "min_snr5 on CPU: A (x86_64, no bf16 units).")


def test_hardware_names_the_cpu_model(monkeypatch, tmp_path):
    """A CPU record says which CPU, not only its architecture: 2-core machines differ (bf16 units or not)."""
    from condiff import runinfo

    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(runinfo, "Path", lambda _: cpuinfo)  # stands for /proc/cpuinfo
    monkeypatch.setattr(runinfo.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runinfo.torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(runinfo.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(runinfo, "bf16_on_cpu", lambda: True)
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n")
    assert runinfo.hardware() == "CPU: AMD EPYC (x86_64, bf16 units), 2 threads"
    monkeypatch.setattr(runinfo, "bf16_on_cpu", lambda: False)  # same model name, 2-3x slower to train
    assert runinfo.hardware() == "CPU: AMD EPYC (x86_64, no bf16 units), 2 threads"
    cpuinfo.unlink()  # not Linux: no model name
    assert runinfo.hardware() == "CPU: x86_64, no bf16 units, 2 threads"
    monkeypatch.setattr(runinfo.torch, "get_num_threads", lambda: 1)  # a run given one core (OMP_NUM_THREADS=1)
    assert runinfo.hardware() == "CPU: x86_64, no bf16 units, 1 thread"
