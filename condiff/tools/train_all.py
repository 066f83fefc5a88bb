"""``python -m condiff train-all``: train, score and make ready to ship every notebook model, one after the other.

    python -m condiff train-all --out runs/all                        # the five models, with their recipes
    python -m condiff train-all --out runs/all --models time_sum,concat --max-steps 500
    python -m condiff train-all --out /tmp/all --quick                # seconds on a CPU: tiny models, whole path
    python -m condiff cards --ship-all runs/all                       # into weights/, then every card

For each model, in ``MODELS`` order:

1. **train** it into ``OUT/NAME`` with ``condiff.train.train`` (a checkpoint every ``max_steps / snapshots``
   steps; ``CURVES`` models keep an EMA snapshot there);
2. **score** it: ``benchmark.sampler_table`` (the guidance sweep at DDIM-25, then each sampler with guidance
   off and at the best w, top-k and exact-scene accuracy), and store its best guidance in its
   ``model_index.json``; score the snapshots (``benchmark.training_curve``);
3. **record** it in ``OUT/summary.json``, written whole after every model.

The same command run again resumes: finished models are skipped, an interrupted one continues from its
last checkpoint. The models that notebooks compare share the recipes' step count, so they see the same
images. One failing model is recorded and the others still run. ``ship_all`` copies the finished models
into ``weights/`` with the sampler table (``samplers.json``) and the curves (``training_curves.json``).
"""
from __future__ import annotations

import json
import math
import numbers
import time
from pathlib import Path

import torch

from .. import WEIGHTS_DIR
from ..recipes import Recipe, get_recipe
from ..runfolder import atomic_write_text
from ..runinfo import hardware, weights_digest
from ..train import train
from .benchmark import GUIDANCE_SCALES, SAMPLERS, sampler_table, training_curve
from .cards import ship, store_sampling

MODELS = ("time_sum_cosine", "time_sum", "concat", "cross_attention", "unconditional")
CURVES = ("time_sum_cosine", "time_sum")  # accuracy against training images, from the snapshots
CURVE_GUIDANCE = 2.0  # the curves' guidance (DDIM-25), as in weights/training_curves.json
QUICK = dict(guidance_scales=(1.0, 3.0), samplers=(("ddim", 5),), snapshots=2, limit=4)  # with Recipe.tiny()


def check_number(name: str, value, low: float, high: float = math.inf, whole: bool = False) -> None:
    """Refuse a setting that is not a finite number in ``[low, high]`` (a whole one if ``whole``), naming it."""
    kind = "a whole number" if whole else "a finite number"
    ok = isinstance(value, numbers.Integral if whole else numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        bounds = f">= {low:g}" if high == math.inf else f"from {low:g} to {high:g}"
        raise ValueError(f"{name} must be {kind} {bounds}, got {value!r}")


def recipes_for(models, quick: bool = False, **overrides) -> dict[str, Recipe]:
    """``{name: recipe}`` for ``models``: the recipes (``tiny()`` ones when ``quick``) with ``overrides``."""
    unknown = [name for name in models if name not in MODELS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"allowed: {', '.join(MODELS)}")
    recipes = {name: get_recipe(name) for name in models}
    return {name: (r.tiny() if quick else r).with_overrides(**overrides) for name, r in recipes.items()}


def train_all(out: str | Path, models=MODELS, quick: bool = False, max_steps: int | None = None,
              batch_size: int | None = None, learning_rate: float | None = None, snapshots: int | None = None,
              limit: int | None = None, guidance_scales=None, samplers=None, device: str | None = None,
              train_options: dict | None = None, command: str = "") -> dict:
    """Train, score and record each of ``models`` under ``out``; returns the summary (``out/summary.json``).

    ``quick``: ``Recipe.tiny()`` models, 2 snapshots, guidance 1 and 3, DDIM-5 as the sampler table and 4
    cases per split (the CPU smoke run of the whole path). ``max_steps``, ``batch_size`` and
    ``learning_rate`` override every recipe; ``train_options`` go to every ``train()`` call (e.g.
    ``{"log_every": 10}``). Every setting is checked before any work.
    """
    snapshots = (QUICK["snapshots"] if quick else 4) if snapshots is None else snapshots
    limit = QUICK["limit"] if quick and limit is None else limit
    guidance_scales = tuple(guidance_scales or (QUICK["guidance_scales"] if quick else GUIDANCE_SCALES))
    samplers = tuple(samplers or (QUICK["samplers"] if quick else SAMPLERS))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    for name, value, low, whole in [("max_steps", max_steps, 1, True), ("batch_size", batch_size, 1, True),
                                    ("learning_rate", learning_rate, 1e-12, False), ("snapshots", snapshots, 1, True),
                                    ("limit", limit, 1, True)]:
        if value is not None:
            check_number(name, value, low, whole=whole)
    for w in guidance_scales:
        check_number("each guidance scale", w, 0, 50)
    recipes = recipes_for(models, quick, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    summary.update(command=command, hardware=hardware(), device=device, finished=False)

    for name, recipe in recipes.items():
        recipe = recipe.with_overrides(checkpoint_every=max(1, recipe.max_steps // snapshots))
        record = summary["runs"].setdefault(name, {})
        wanted = json.loads(json.dumps(recipe.to_dict()))  # as training.json holds it
        if record.get("done") and record.get("training", {}).get("recipe") == wanted:
            continue  # finished by an earlier call
        record.clear()
        start = time.perf_counter()
        try:
            record.update(train_and_score(name, recipe, out / name, limit, guidance_scales, samplers, device,
                                          train_options or {}, command))
            samplers_table = record.pop("samplers", None)
            if samplers_table:
                merged = summary.setdefault("samplers", {k: v for k, v in samplers_table.items() if k != "models"})
                merged["digests"] = {**merged.get("digests", {}), **samplers_table["digests"]}
                merged["models"] = {**merged.get("models", {}), name: samplers_table["models"][name]}
            if "curve" in record:
                summary.setdefault("curves", {})[name] = record.pop("curve")
            record["done"] = True
        except Exception as error:  # noqa: BLE001 - one failed model must not cost the others their run
            record["error"] = f"{type(error).__name__}: {error}"
        record["wall_s"] = round(time.perf_counter() - start, 1)
        print(f"train-all: {name}: {record.get('error') or 'trained and scored'} ({record['wall_s']:.0f} s)",
              flush=True)
        atomic_write_text(path, json.dumps(summary, indent=1) + "\n")

    summary["finished"] = True
    atomic_write_text(path, json.dumps(summary, indent=1) + "\n")
    return summary


def train_and_score(name: str, recipe: Recipe, run_dir: Path, limit, guidance_scales, samplers, device: str,
                    train_options: dict, command: str) -> dict:
    """Train one model, then its sampler table (conditional models) and its curve (``CURVES``)."""
    every = recipe.checkpoint_every
    note = f"python -m condiff train-all: the models one after the other, each alone on {hardware()}"
    info = train(recipe, run_dir, snapshot_every=every if name in CURVES else 0, note=note, progress=False,
                 command=f"{command or 'python -m condiff train-all'} [model {name}]", device=device,
                 **train_options)
    result = {"training": info}
    if recipe.mode != "unconditional":
        table = sampler_table(run_dir.parent, names=[name], guidance_scales=guidance_scales, samplers=samplers,
                              device=device, limit=limit)
        result["best_guidance"] = table["models"][name]["best_guidance"]
        store_sampling(run_dir, result["best_guidance"], "ddim", 25)
        table["digests"][name] = weights_digest(run_dir)
        result["samplers"] = table
    if name in CURVES:
        result["curve"] = training_curve(run_dir, guidance_scale=CURVE_GUIDANCE, steps=25, device=device, limit=limit)
    return result


def ship_all(out: str | Path, weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Copy the finished models of a train-all folder into ``weights/`` (pipelines with their stored guidance),
    with ``samplers.json`` and ``training_curves.json``; returns the names shipped. The caller writes the cards."""
    out, weights_dir = Path(out), Path(weights_dir)
    path = out / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"no train-all summary at {path}: run `python -m condiff train-all --out {out}`")
    summary = json.loads(path.read_text())
    shipped = [name for name, record in summary["runs"].items() if record.get("done")]
    samplers = summary.get("samplers")
    for name in shipped:
        if samplers and name in samplers["digests"] and weights_digest(out / name) != samplers["digests"][name]:
            raise OSError(f"{out / name} differs from the weights its sampler table measured")
    for name in shipped:
        ship(out / name, name, weights_dir)
    if samplers:
        samplers["measured_by"] = "python -m condiff train-all: benchmark.sampler_table on each model after training"
        atomic_write_text(weights_dir / "samplers.json", json.dumps(samplers, indent=1) + "\n")
    if summary.get("curves"):
        curves_path = weights_dir / "training_curves.json"
        curves = json.loads(curves_path.read_text()) if curves_path.is_file() else {}
        curves.update(measured_by="python -m condiff train-all: benchmark.training_curve on the runs' snapshots, "
                                  f"DDIM-25, w = {CURVE_GUIDANCE:g}", curves=summary["curves"])
        atomic_write_text(curves_path, json.dumps(curves, indent=1) + "\n")
    return shipped
