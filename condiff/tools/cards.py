"""Shipping a training run into ``weights/NAME`` and the cards that say how each folder was made.

    python -m condiff cards --ship time_sum=runs/time_sum     # copy the run, then rewrite every card
    python -m condiff cards --store-guidance                  # each model's best w of samplers.json

``--ship NAME=RUN`` takes a recipe's name (or ``evaluator``) and a finished run of that recipe from outside
``weights/`` (``check_ship``), and swaps the new folder in whole. Each folder gets a ``README.md`` model
card (``huggingface_hub.ModelCard``: YAML metadata, then the facts from the run's own ``training.json``
and the sha256 of every file), and ``weights/README.md`` gathers the cards on one page.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from .. import WEIGHTS_DIR
from ..pipeline import SCHEDULERS, load_pipeline
from ..recipes import RECIPES
from ..runfolder import CARD, INDEX, atomic_write_text
from ..runinfo import sha256
from .commands import MAX_GUIDANCE
from .results import title

EVALUATOR_TITLE = "Scene evaluator (a classifier with a presence head and a per-object count head)"
SHIPPED_FILES = (str(INDEX), "unet", "label_encoder", "scheduler", "history.json", "training.json",
                 "config.json", "diffusion_pytorch_model.safetensors")
RECIPE_FACTS = ("mode", "beta_schedule", "block_out_channels", "batch_size", "learning_rate", "label_dropout",
                "ema_decay", "ema_warmup", "snr_gamma", "timestep_sampling", "time_scale_shift", "label_hidden_dim")


def store_sampling(path: str | Path, guidance_scale: float, sampler: str | None = None,
                   num_inference_steps: int | None = None) -> dict:
    """Write a saved pipeline's default guidance (and sampler) into its ``model_index.json``; nothing else changes.

    The pipeline registers them in its config (``register_to_config``), and the config is written whole,
    in diffusers' own format, so ``from_pretrained`` reads them back. Returns the new config.
    """
    if not (Path(path) / INDEX).is_file():
        raise FileNotFoundError(f"no pipeline at {path}: expected {INDEX}")
    if not 0 <= float(guidance_scale) <= MAX_GUIDANCE:
        raise ValueError(f"guidance_scale must be between 0 and {MAX_GUIDANCE:g}, got {guidance_scale}")
    if sampler is not None and sampler not in SCHEDULERS:
        raise ValueError(f"unknown sampler {sampler!r}; allowed: {', '.join(SCHEDULERS)}")
    if num_inference_steps is not None and int(num_inference_steps) < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
    pipe = load_pipeline(path)
    pipe.register_to_config(guidance_scale=float(guidance_scale), sampler=sampler,
                            num_inference_steps=None if num_inference_steps is None else int(num_inference_steps))
    config = json.loads(pipe.to_json_string())
    config.pop("_name_or_path", None)  # where it was loaded from: not part of the model
    atomic_write_text(Path(path) / INDEX, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config


def store_best_guidance(weights_dir: Path = WEIGHTS_DIR, samplers_path: Path | None = None) -> dict:
    """Write each model's best guidance of ``samplers.json`` (DDIM-25 sweep) into its ``model_index.json``.

    Only ``model_index.json`` changes; ``pipe(labels)``, ``sample`` and ``evaluate`` then use that
    guidance by default. Returns ``{name: guidance_scale}``.
    """
    samplers_path = Path(samplers_path) if samplers_path else Path(weights_dir) / "samplers.json"
    if not samplers_path.is_file():
        raise FileNotFoundError(f"no sampler table at {samplers_path}: run `python -m condiff benchmark --samplers`")
    stored = {}
    for name, entry in json.loads(samplers_path.read_text())["models"].items():
        if entry.get("best_guidance") is None or not (Path(weights_dir) / name / INDEX).is_file():
            continue
        sweep = entry.get("sweep") or [{}]
        store_sampling(Path(weights_dir) / name, entry["best_guidance"], sweep[0].get("sampler", "ddim"),
                       sweep[0].get("steps", 25))
        stored[name] = float(entry["best_guidance"])
    return stored


SHIP_NAMES = (*RECIPES, "evaluator")  # the folders of weights/ that a run may be shipped into (each gets a card)
MODEL_KEYS = ("mode", "beta_schedule", "max_objects")  # what a run must share with its recipe to ship under its name


def check_ship(run_dir: str | Path, name: str, weights_dir: Path = WEIGHTS_DIR) -> dict:
    """Refuse, before anything is written, a ship that would lose files or mislabel weights; return the run's
    ``training.json``.

    ``name`` must be a recipe's name (or ``evaluator``); the run must be a finished run of that recipe (same
    mode, noise schedule and objects per scene; a scene classifier for ``evaluator``), and neither the
    target itself nor anything else inside ``weights/``.
    """
    run_dir, weights_dir = Path(run_dir), Path(weights_dir)
    if not (run_dir / "training.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a finished training run (no training.json)")
    if name not in SHIP_NAMES:
        raise ValueError(f"cannot ship into weights/{name}: NAME must be one of {', '.join(SHIP_NAMES)} (the "
                         "folders that get a card); e.g. --ship time_sum=runs/time_sum")
    source, weights = run_dir.resolve(), weights_dir.resolve()
    if source == weights or weights in source.parents or source in weights.parents:
        raise ValueError(f"{run_dir} is inside {weights_dir} (or holds it); ship from a training run elsewhere, "
                         "e.g. runs/NAME: shipping a folder onto itself would delete it")
    info = json.loads((run_dir / "training.json").read_text())
    recipe = info.get("recipe") if isinstance(info, dict) else None
    if name == "evaluator":
        config = run_dir / "config.json"
        if recipe is not None or not config.is_file() or \
                json.loads(config.read_text()).get("_class_name") != "SceneClassifier":
            raise ValueError(f"{run_dir} is not a scene classifier's run (`python -m condiff train-evaluator`); "
                             "only one can ship as evaluator")
        return info
    if not isinstance(recipe, dict) or not (run_dir / "model_index.json").is_file():
        raise ValueError(f"{run_dir} holds no diffusion pipeline of a training run (model_index.json and a "
                         f"recipe in training.json); only such a run can ship as {name}")
    if recipe.get("name", name) != name:
        raise ValueError(f"{run_dir} is a run of the recipe {recipe['name']!r}, not {name!r}; a card would "
                         f"describe other weights. Ship it under its own recipe's name, or train {name}")
    expected = RECIPES[name]
    for key in MODEL_KEYS:
        value = recipe.get(key, getattr(expected, key))
        if value != getattr(expected, key):
            raise ValueError(f"{run_dir} was trained with {key}={value!r}, but {name} has "
                             f"{key}={getattr(expected, key)!r}; a card would describe other weights")
    return info


def ship(run_dir: str | Path, name: str, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Copy a finished training run into ``weights/NAME``: the pipeline and its records, no checkpoint.

    Checked first (``check_ship``). The copy is made in a temporary folder beside the target and renamed
    into place; the old folder is moved aside first and deleted only once the new one is in place, so a
    kill leaves the old or the new folder whole (an old one set aside is put back by the next ``ship``).
    """
    check_ship(run_dir, name, weights_dir)
    run_dir, target = Path(run_dir), Path(weights_dir) / name
    tmp, old = target.with_name(f".{name}.new.tmp"), target.with_name(f".{name}.old.tmp")
    if old.is_dir() and not target.exists():  # a ship killed between its two renames: the old folder goes back
        os.replace(old, target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for item in SHIPPED_FILES:
        source = run_dir / item
        if source.is_dir():
            shutil.copytree(source, tmp / item)
        elif source.is_file():
            shutil.copy2(source, tmp / item)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _facts(info: dict) -> list[tuple[str, object]]:
    """The card's list: how the run was made, from its ``training.json``."""
    facts = [
        ("command", f"`{info['command']}`" if "command" in info else "?"),
        ("commit", info.get("commit", "?")),
        ("hardware", info.get("hardware", "?") + (f", {info['processes']} process(es)" if "processes" in info else "")),
        ("wall time", f"{info['train_seconds'] / 60:.1f} min"),
        ("steps", info["steps"]),
        ("images seen", f"{info.get('images_seen', info['steps'] * info.get('batch_size', 0)):,}"),
        ("seed", info["seed"]),
    ]
    for i, leg in enumerate(info.get("legs", []), 1):  # a warm restart: the runs its starting weights came from
        facts.append((f"leg {i} (the starting weights, sha256 {leg.get('digest', '?')[:12]})",
                      f"{leg.get('images_seen', 0):,} images, {leg.get('train_seconds', 0) / 60:.1f} min on "
                      f"{leg.get('hardware', '?')}, commit {leg.get('commit', '?')}: `{leg.get('command', '?')}`"))
    if "legs" in info:
        facts.append(("images seen, all legs", f"{info['images_seen_total']:,}"))
    if "note" in info:
        facts.append(("note", info["note"]))
    if "final_loss" in info:
        facts.append(("final loss (mean of the last 100 steps)", f"{info['final_loss']:.4f}"))
    if "parameters" in info:
        facts.append(("parameters", f"{info['parameters']:,}"))
    if "accuracy_on_fresh_scenes" in info:
        facts.append(("top-k accuracy on 2,048 fresh rendered scenes", f"{info['accuracy_on_fresh_scenes']:.4f}"))
    scenes = {"plain": "1 to 5 distinct objects", "duplicates": "2 to 5 objects with a repeat"}
    for kind, share in info.get("scene_agreement", {}).items():  # the evaluator's counts against the renderer's
        facts.append((f"exact scene content (every object, how many) on fresh scenes of {scenes.get(kind, kind)}",
                      f"{share:.4f}"))
    recipe = info.get("recipe", {})
    if recipe:
        # A setting left at None (e.g. no Min-SNR weighting) is the plain default and is not listed.
        facts.append(("recipe", ", ".join(f"{k}={recipe[k]}" for k in RECIPE_FACTS if recipe.get(k) is not None)))
    return facts


def model_card(name: str, weights_dir: Path = WEIGHTS_DIR) -> ModelCard:
    """The card of ``weights/NAME``, made from the folder's own ``training.json`` and files."""
    folder = weights_dir / name
    info = json.loads((folder / "training.json").read_text())
    mode = info.get("recipe", {}).get("mode")
    data = ModelCardData(library_name="diffusers", license="mit",
                         tags=["condiff", "diffusion", *([mode] if mode else ["image-classification"])])
    lines = [f"## `{name}`", "", title(name) if name in RECIPES else EVALUATOR_TITLE, ""]
    lines += [f"- {key}: {value}" for key, value in _facts(info)]
    lines += ["", "| file | bytes | sha256 |", "|---|---|---|"]
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder) != Path(CARD)):
        lines.append(f"| `{path.relative_to(folder)}` | {path.stat().st_size:,} | `{sha256(path)}` |")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def card_names(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """The folders that get a card: the recipes' models in notebook order, then the evaluator."""
    return [n for n in [*RECIPES, "evaluator"] if (weights_dir / n / "training.json").is_file()]


def cards_markdown(weights_dir: Path = WEIGHTS_DIR) -> str:
    """The text of ``weights/README.md``: every folder's card (without its metadata) on one page."""
    header = [
        "# Shipped weights",
        "",
        "Each folder is a diffusers folder (`save_pretrained`: config.json + safetensors; EMA weights for",
        "the diffusion models), copied from a training run by `condiff.tools.cards.ship` without its resume",
        "checkpoint, with its own card (`README.md`). This page gathers the cards; `python -m condiff cards`",
        "generates them from the folders, and every figure below comes from the run's own `training.json`.",
        "",
        "`hardware` is what `condiff.runinfo.hardware()` reported: a GPU's name, or the CPU's model name (runs",
        "from before it was recorded give only the architecture, \"x86_64\") and torch's threads. A \"CPU\" below is",
        "one of the 2-core VMs (no GPU) this repository is developed on; its \"1 threads\" runs trained two at a",
        "time. A run's `note` says how its machine was shared.",
        "",
    ]
    cards = [model_card(n, weights_dir).text.strip() for n in card_names(weights_dir)]
    return "\n".join(header) + "\n" + "\n\n".join(cards) + "\n"


def write_cards(weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Save each folder's card and ``weights/README.md``; return the page's path."""
    for name in card_names(weights_dir):
        model_card(name, weights_dir).save(weights_dir / name / CARD)
    path = weights_dir / "README.md"
    path.write_text(cards_markdown(weights_dir))
    return path
