"""The results table: every shipped model, scored on the committed splits, from its own files.

    python -m condiff results            # writes weights/results.json and the README's table

Training facts (images, time, hardware) come from each folder's ``training.json``; accuracies
are measured now, with the shipped evaluator, DDIM-25 and a fixed seed, so the table is
reproducible and nothing in it is typed by hand. Each split gets i-CLEVR's top-k accuracy and the
exact-scene accuracy (``condiff.evaluate``). Each multi-label model is also scored, at its best guidance,
on other label files of the same format that no model was chosen by (``splits.other_label_files``), so a
score that holds only on the committed splits shows. The unconditional model has no labels to check:
its row gives the evaluator's mean largest label probability on its samples and on real scenes.
Notebook 5 shows the table.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from .. import WEIGHTS_DIR
from ..data.iclevr import load_split
from ..data.scenes import ProceduralScenes
from ..evaluate import classify, evaluate, load_evaluator
from ..models import count_parameters
from ..pipeline import load_pipeline, make_scheduler
from ..recipes import RECIPES
from ..runfolder import INDEX
from ..runinfo import hardware, weights_digest
from .splits import other_label_files

# Row keys of an exact accuracy -> what the tables call it. ``_exact`` rows were measured by the first
# evaluator (no counts): the share of images whose set of objects found equals the asked set.
EXACT_COLUMNS = {"_exact_scene": "exact-scene", "_exact": "exact-set (old evaluator)"}


def splits_for(pipeline) -> list[str]:
    """The committed splits a conditional pipeline is scored on: ``single`` for one-object models."""
    return ["single"] if pipeline.label_encoder.config.max_objects == 1 else ["test", "new_test"]


def shipped_models(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """The recipes with a pipeline in ``weights_dir``, in the order of the notebooks."""
    return [name for name in RECIPES if (weights_dir / name / INDEX).is_file()]


def title(name: str) -> str:
    """The method name a table shows for a model folder: its recipe's title, else the folder's name."""
    return RECIPES[name].title if name in RECIPES else name


def training_cost(info: dict) -> dict:
    """Images, minutes and hardware of every run behind a model's weights, from its ``training.json``.

    A warm restart (``--init-from``) lists the runs its starting weights came from as ``legs``: the
    table counts them all, not only the last run.
    """
    if "train_seconds" not in info:
        return {"train_images": info.get("images_seen"), "train_minutes": None, "hardware": info.get("hardware", "?")}
    runs = [*info.get("legs", []), info]
    return {"train_images": info.get("images_seen_total", info.get("images_seen")),
            "train_minutes": round(sum(r.get("train_seconds", 0) for r in runs) / 60, 1),
            "hardware": " + ".join(dict.fromkeys(r.get("hardware", "?") for r in runs))}


def score_other_files(pipe, guidance_scale: float, steps: int, evaluator, quick: bool = False) -> dict:
    """Top-k and exact-scene accuracy on each of ``other_label_files()`` (written out as i-CLEVR label
    files and scored as the committed splits are: ``evaluate``, seed 0)."""
    files = other_label_files(files=2, num_cases=4) if quick else other_label_files()
    scores = {"files": len(files), "scenes_per_file": len(files[0]), "top_k": [], "exact_scene": []}
    with tempfile.TemporaryDirectory() as folder:
        for i, cases in enumerate(files):
            path = Path(folder) / f"labels_{i}.json"
            path.write_text(json.dumps(cases) + "\n")
            result = evaluate(pipe, path, guidance_scale=guidance_scale, num_inference_steps=steps,
                              evaluator=evaluator)
            scores["top_k"].append(round(result["accuracy"], 3))
            scores["exact_scene"].append(round(result["exact_scene_accuracy"], 3))
    return scores


def model_row(name: str, guidance_scale: float, weights_dir: Path = WEIGHTS_DIR, steps: int = 25,
              quick: bool = False, other_files: bool = False) -> dict:
    """Score one shipped model: test / new_test top-k and exact-scene accuracy (or ``single`` for one-hot
    models); with ``other_files``, a multi-label model also on ``other_label_files()``."""
    folder = weights_dir / name
    pipe = load_pipeline(folder)
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    steps = 5 if quick else steps
    info = json.loads((folder / "training.json").read_text()) if (folder / "training.json").is_file() else {}
    row = {
        "model": name,
        "method": title(name),
        "params": count_parameters(pipe.unet, pipe.label_encoder),
        **training_cost(info),
        "guidance_scale": guidance_scale,
        "sampler": f"DDIM-{steps}",
        "sampled_on": hardware(),
    }
    evaluator = load_evaluator()
    if pipe.label_encoder is None:  # no labels to check: how sure is the evaluator that objects are there?
        n = 8 if quick else 64
        fake = pipe(batch_size=n, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                    output_type="np").images
        real = (ProceduralScenes(seed=123).batch(0, n)[0] + 1) / 2
        row["max_prob"] = round(float(torch.sigmoid(classify(fake, evaluator)).max(1).values.mean()), 3)
        row["max_prob_real"] = round(float(torch.sigmoid(classify(real, evaluator)).max(1).values.mean()), 3)
        return row
    splits = splits_for(pipe)
    for split in splits:
        result = evaluate(pipe, split, guidance_scale=guidance_scale, num_inference_steps=steps,
                          evaluator=evaluator, limit=8 if quick else None)
        row[split] = round(result["accuracy"], 3)
        row[f"{split}_exact_scene"] = round(result["exact_scene_accuracy"], 3)
    if other_files and splits != ["single"]:
        row["other_files"] = score_other_files(pipe, guidance_scale, steps, evaluator, quick)
    # Sampling time for 32 images on this machine.
    start = time.perf_counter()
    pipe((load_split(splits[0]) * 32)[:32], guidance_scale=guidance_scale, num_inference_steps=steps,
         generator=torch.Generator().manual_seed(0), output_type="np")
    row["sample_32_seconds"] = round(time.perf_counter() - start, 1)
    return row


def best_guidance(name: str, weights_dir: Path = WEIGHTS_DIR, default: float = 2.0) -> float:
    """The guidance weight that scored best in the sweep of ``weights/samplers.json`` (else ``default``)."""
    path = weights_dir / "samplers.json"
    if path.is_file():
        entry = json.loads(path.read_text())["models"].get(name)
        if entry and entry.get("best_guidance") is not None:
            return float(entry["best_guidance"])
    return default


def results_table(weights_dir: Path = WEIGHTS_DIR, quick: bool = False) -> list[dict]:
    """Every shipped model with guidance off (w = 1) and at its best w (there also on other label files)."""
    rows = []
    for name in shipped_models(weights_dir):
        best = best_guidance(name, weights_dir)
        for w in sorted({1.0, best}):
            rows.append(model_row(name, w, weights_dir, quick=quick, other_files=w == best))
            if rows[-1].get("test") is None and rows[-1].get("single") is None:
                break  # unconditional: no labels, no guidance
    return rows


def write_results(weights_dir: Path = WEIGHTS_DIR, quick: bool = False) -> dict:
    """Measure the table and save it as ``weights/results.json`` (what notebook 5 and the README show)."""
    rows = results_table(weights_dir, quick=quick)
    results = {
        "settings": f"{rows[0]['sampler']}, seed 0, evaluator weights/evaluator, sampling on {hardware()}",
        "digests": {name: weights_digest(weights_dir / name) for name in shipped_models(weights_dir)},
        "rows": rows,
    }
    if not quick:
        (weights_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def to_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table; the timing column names the sampler and machine the rows were timed with.

    Exact-scene columns appear when the rows have them (``test_exact_scene``, ``new_test_exact_scene``,
    ``single_exact_scene``); rows measured by the first evaluator, which could not count, have
    ``test_exact`` etc. instead, shown as "exact-set (old evaluator)".
    """
    timed = sorted({f"{r['sampler']}, {r['sampled_on']}" for r in rows if "sampler" in r}) or ["?"]
    suffix, name = next(((s, n) for s, n in EXACT_COLUMNS.items() if any(f"test{s}" in r for r in rows)),
                        (None, None))
    exact = suffix is not None
    head = ("| method | params | training images | training time | hardware | guidance w "
            "| test top-k | new_test top-k |" + (f" test {name} | new_test {name} |" if exact else "")
            + f" 32 images ({'; '.join(timed)}) |")
    lines = [head, "|" + "---|" * (11 if exact else 9)]

    def cell(value, fmt="{:.3f}", none="-"):
        return none if value is None else fmt.format(value)

    for r in rows:
        test = r.get("test", r.get("single"))
        conditional = test is not None
        first = r.get(f"test{suffix}", r.get(f"single{suffix}"))
        exact_cells = [cell(first), cell(r.get(f"new_test{suffix}"))] if exact else []
        lines.append(" | ".join([
            f"| {r['method']}",
            f"{r['params'] / 1e6:.2f}M",
            cell(r["train_images"], "{:,}", "?"),
            cell(r["train_minutes"], "{:.0f} min", "?"),
            r["hardware"],
            cell(r["guidance_scale"] if conditional else None, "{:g}"),
            cell(test) + (" (single)" if "single" in r else "") if conditional else
            f"max-prob {r['max_prob']:.2f} (real scenes {r['max_prob_real']:.2f})" if "max_prob" in r else "-",
            cell(r.get("new_test")),
            *exact_cells,
            cell(r.get("sample_32_seconds"), "{:.1f} s"),
        ]) + " |")
    return "\n".join(lines)


def other_files_markdown(rows: list[dict]) -> str:
    """The rows scored on other label files (``other_files``) as a Markdown table; "" when none were."""
    rows = [r for r in rows if "other_files" in r]
    if not rows:
        return ""
    first = rows[0]["other_files"]
    lines = [f"The same models at their best w on {first['files']} other label files of {first['scenes_per_file']} "
             "scenes of 1 to 3 objects each (drawn by `other_label_files` in `condiff/tools/splits.py`; no "
             "model was chosen by them):", "",
             "| method | guidance w | test / new_test top-k (above) | top-k, each file | top-k, mean "
             "| exact-scene, each file | exact-scene, mean |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        o = r["other_files"]
        lines.append(f"| {r['method']} | {r['guidance_scale']:g} | {r['test']:.3f} / {r['new_test']:.3f} "
                     f"| {' / '.join(f'{v:.3f}' for v in o['top_k'])} | {sum(o['top_k']) / len(o['top_k']):.3f} "
                     f"| {' / '.join(f'{v:.3f}' for v in o['exact_scene'])} "
                     f"| {sum(o['exact_scene']) / len(o['exact_scene']):.3f} |")
    return "\n".join(lines)


def results_markdown(results: dict) -> str:
    """The table, the other label files' table (when measured) and the line that says how they were
    measured: what the README shows."""
    rows = results["rows"]
    parts = [to_markdown(rows), other_files_markdown(rows), f"Measured with {results['settings']}."]
    return "\n\n".join(part for part in parts if part)
