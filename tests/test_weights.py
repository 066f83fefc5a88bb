"""The shipped weights, their cards and the results table agree with each other."""
import json
import re
from pathlib import Path

import pytest

from condiff import WEIGHTS_DIR
from condiff.pipeline import load_pipeline
from condiff.recipes import RECIPES
from condiff.runinfo import weights_digest
from condiff.tools.benchmark import samplers_markdown
from condiff.tools.cards import card_names, cards_markdown, model_card
from condiff.tools.results import best_guidance, shipped_models, to_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_notebook_model_is_shipped_as_small_safetensors():
    assert shipped_models() == list(RECIPES)
    for path in WEIGHTS_DIR.rglob("*"):
        assert path.suffix not in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}, f"{path}: no pickles in weights/"
        if path.is_file():
            assert path.stat().st_size < 20e6, f"{path} is over 20 MB"


@pytest.mark.parametrize("name", list(RECIPES))
def test_shipped_pipeline_loads_with_its_records(name):
    pipe = load_pipeline(WEIGHTS_DIR / name)
    info = json.loads((WEIGHTS_DIR / name / "training.json").read_text())
    history = json.loads((WEIGHTS_DIR / name / "history.json").read_text())
    steps = [h["step"] for h in history]  # one entry per step, or per --log-every steps (and the last step)
    assert steps == sorted(set(steps)) and steps[-1] == info["steps"] and info["recipe"]["name"] == name
    assert (pipe.label_encoder is None) == (name == "unconditional")


def test_cards_are_up_to_date():
    assert (WEIGHTS_DIR / "README.md").read_text() == cards_markdown(), "run `python -m condiff cards`"
    assert card_names() == [*RECIPES, "evaluator"]
    for name in card_names():
        card = model_card(name)
        assert (WEIGHTS_DIR / name / "README.md").read_text() == card.content, f"{name}: run `python -m condiff cards`"
        assert card.data.library_name == "diffusers" and card.text.strip() in cards_markdown()


def test_results_were_measured_on_the_shipped_weights():
    results = json.loads((WEIGHTS_DIR / "results.json").read_text())
    assert results["digests"] == {name: weights_digest(WEIGHTS_DIR / name) for name in shipped_models()}, \
        "weights changed since the table was measured: run `python -m condiff results`"
    table = to_markdown(results["rows"])
    assert table in README.read_text(), "README's results table differs from weights/results.json"
    assert not re.search(r"RT0\d", README.read_text())


def test_sampler_table_was_measured_on_the_shipped_weights():
    """weights/samplers.json (sampler comparison) belongs to these weights, reports both metrics, and the README
    shows it."""
    samplers = json.loads((WEIGHTS_DIR / "samplers.json").read_text())
    assert samplers["digests"] == {name: weights_digest(WEIGHTS_DIR / name) for name in samplers["models"]}, \
        "weights changed since weights/samplers.json was measured: rerun `python -m condiff benchmark --samplers`"
    splits = ("test", "new_test", "single")
    for entry in samplers["models"].values():
        sweep_best = max(entry["sweep"], key=lambda r: sum(v for k, v in r.items() if k in splits))
        assert entry["best_guidance"] == sweep_best["guidance_scale"]
        # The samplers of the notebooks (DPM-Solver++-10) and of the results table (DDIM-25), at w = 1 and the best w
        measured = {(r["sampler"], r["steps"], r["guidance_scale"]) for r in entry["samplers"]}
        assert measured >= {(s, n, w) for s, n in [("ddim", 25), ("dpm++", 10)] for w in (1.0, entry["best_guidance"])}
        for r in entry["sweep"] + entry["samplers"]:  # top-k and exact-scene accuracy on every split scored
            scored = [k for k in splits if k in r]
            assert scored and all(f"{k}_exact_scene" in r for k in scored), r
    assert samplers_markdown() in README.read_text(), "README's sampler tables differ: run `python -m condiff results`"


def test_results_table_uses_each_models_best_guidance():
    results = json.loads((WEIGHTS_DIR / "results.json").read_text())
    for name in shipped_models():
        scales = {r["guidance_scale"] for r in results["rows"] if r["model"] == name and "max_prob" not in r}
        if name != "unconditional":
            assert scales == {1.0, best_guidance(name)}


def test_shipped_models_store_their_best_guidance():
    """`python -m condiff cards --store-guidance` wrote samplers.json's best w into each model_index.json."""
    samplers = json.loads((WEIGHTS_DIR / "samplers.json").read_text())
    for name in shipped_models():
        config = load_pipeline(WEIGHTS_DIR / name).config
        if name in samplers["models"]:
            stored = (config.guidance_scale, config.sampler, config.num_inference_steps)
            assert stored == (best_guidance(name), "ddim", 25)
        else:
            assert config.guidance_scale == 1.0  # unconditional: nothing to guide
