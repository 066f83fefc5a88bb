import pytest
import torch
from tiny import render_cases

from condiff import WEIGHTS_DIR
from condiff.data.iclevr import load_split
from condiff.data.labels import names_to_multihot
from condiff.data.scenes import ProceduralScenes
from condiff.evaluate import (
    SceneClassifier,
    classify,
    exact_set_accuracy,
    load_evaluator,
    score_logits,
    topk_mask,
)
from condiff.tools.evaluator import real_scene_accuracy


def topk_hits(logits, labels):
    """i-CLEVR's count, as evaluate.py's docstring writes it: (hits, objects asked)."""
    return int((topk_mask(logits, labels) * labels).sum()), int(labels.sum())


def test_topk_hits_counts_hits_and_all_asked_objects():
    labels = torch.stack([names_to_multihot(["red cube"]), names_to_multihot(["red cube", "blue cube", "gray cube"])])
    logits = torch.full((2, 24), -5.0)
    logits[0, 1] = 5  # image 0: red cube found -> 1 of 1
    logits[1, [1, 2, 20]] = 5  # image 1: red and blue cube found, gray cube missed -> 2 of 3
    assert topk_hits(logits, labels) == (3, 4)


def test_exact_set_accuracy_fails_on_an_extra_object_that_topk_ignores():
    labels = torch.stack([names_to_multihot(["red cube"]), names_to_multihot(["red cube", "blue cube"]),
                          names_to_multihot(["gray cube"])])
    logits = torch.full((3, 24), -5.0)
    logits[0, 1] = 5  # image 0: exactly the red cube -> exact
    logits[1, [1, 2]] = 5  # image 1: red and blue cube...
    logits[1, 20] = 3  # ... and an extra object the evaluator is sure of -> top-2 still right, set wrong
    logits[2, 3] = 5  # image 2: a green cube instead of the gray one -> both wrong
    assert topk_hits(logits, labels) == (3, 4)
    assert [exact_set_accuracy(logits[i:i + 1], labels[i:i + 1]) for i in range(3)] == [1, 0, 0]
    assert exact_set_accuracy(logits, labels) == pytest.approx(1 / 3)
    logits[1, 20] = -0.1  # below the 0.5 probability threshold: no extra object any more
    assert exact_set_accuracy(logits, labels) == pytest.approx(2 / 3)


def test_shipped_evaluator_recognises_real_scenes():
    evaluator = load_evaluator()
    assert real_scene_accuracy(evaluator, n=512, seed=7) >= 0.99


def test_scores_of_a_rendered_split_are_near_perfect():
    cases = load_split("new_test")
    images = (render_cases(cases) + 1) / 2  # (B, 3, 32, 32) in [0, 1]
    result = score_logits(classify(images, load_evaluator()), cases)
    assert result["accuracy"] >= 0.97
    assert result["exact_accuracy"] >= 0.9  # real scenes hold exactly the asked objects
    assert set(result["per_label"]) <= set(names for c in cases for names in c)
    # The wrong scenes for the same labels score badly: the metric can fail.
    shuffled = score_logits(classify(images.flip(0), load_evaluator()), cases)
    assert shuffled["accuracy"] < 0.5 and shuffled["exact_accuracy"] < 0.5


def test_evaluator_weights_are_small_safetensors():
    files = list((WEIGHTS_DIR / "evaluator").iterdir())
    assert {f.name for f in files} >= {"config.json", "diffusion_pytorch_model.safetensors"}
    assert all(f.stat().st_size < 20e6 for f in files)


def test_missing_or_corrupted_evaluator_raises_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no evaluator at"):
        load_evaluator(tmp_path)
    SceneClassifier().save_pretrained(tmp_path)
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(OSError, match="missing or corrupted"):
        load_evaluator(tmp_path)


def test_evaluator_input_range_matches_scenes():
    images, labels = ProceduralScenes(seed=5).batch(0, 64)
    logits = load_evaluator()(images)
    assert logits.shape == (64, 24)
    hits, asked = topk_hits(logits, labels)
    assert hits / asked >= 0.97


def test_evaluate_leaves_the_callers_pipeline_as_it_was(tiny_pipeline_dir, evaluator_dir):
    from condiff.evaluate import evaluate
    from condiff.pipeline import load_pipeline

    pipe = load_pipeline(tiny_pipeline_dir)
    scheduler = pipe.scheduler
    result = evaluate(pipe, "single", scheduler="ddim", num_inference_steps=2, limit=2,
                      evaluator=load_evaluator(evaluator_dir))
    assert result["scheduler"] == "DDIMScheduler" and result["steps"] == 2 and len(result["cases"]) == 2
    assert pipe.scheduler is scheduler and type(scheduler).__name__ == "DDPMScheduler"
    assert scheduler.num_inference_steps is None  # not even its timesteps were set
    assert getattr(pipe, "_progress_bar_config", {}) == {}


def test_results_table_shows_exact_set_columns_only_when_measured():
    from condiff.tools.results import to_markdown

    row = {"method": "m", "params": 1e6, "train_images": 10, "train_minutes": 1.0, "hardware": "h",
           "guidance_scale": 3.0, "test": 0.5, "new_test": 0.6, "sample_32_seconds": 1.0}
    old = to_markdown([row])
    assert "exact-set" not in old and old.splitlines()[2].count("|") == 10
    new = to_markdown([{**row, "test_exact": 0.125, "new_test_exact": 0.25}])
    assert "| test exact-set | new_test exact-set |" in new and "| 0.500 | 0.600 | 0.125 | 0.250 |" in new
    assert all(line.count("|") == 12 for line in new.splitlines())
