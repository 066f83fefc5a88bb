"""The results table: every shipped model, scored on the committed splits, from its own files.

    python -m condiff results            # prints the Markdown table that the README shows

Training facts (images, time, hardware) come from each folder's ``training.json``; accuracies
are measured now, with the shipped evaluator, DDIM-25 and a fixed seed, so the table is
reproducible and nothing in it is typed by hand. The unconditional model has no labels to check:
its row gives the evaluator's mean largest label probability on its samples and on real scenes.
Notebook 5 shows the table.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from . import WEIGHTS_DIR
from .data.iclevr import load_split
from .data.scenes import ProceduralScenes
from .evaluate import classify, evaluate, load_evaluator, splits_for
from .models import count_parameters
from .pipeline import load_pipeline, make_scheduler

# Shipped models in the order of the notebooks, with the method name the table shows.
MODELS = {
    "unconditional": "Unconditional DDPM",
    "cross_attention": "One-hot, cross-attention",
    "time_sum": "Multi-label, time-sum (linear)",
    "concat": "Multi-label, channel concat (linear)",
    "time_sum_cosine": "Multi-label, time-sum (cosine)",
}


def shipped_models(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    return [name for name in MODELS if (weights_dir / name / "model_index.json").is_file()]


def model_row(name: str, guidance_scale: float, weights_dir: Path = WEIGHTS_DIR, steps: int = 25,
              quick: bool = False) -> dict:
    """Score one shipped model: test / new_test accuracy (or ``single`` for one-hot models)."""
    folder = weights_dir / name
    pipe = load_pipeline(folder)
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    info = json.loads((folder / "training.json").read_text()) if (folder / "training.json").is_file() else {}
    row = {
        "model": name,
        "method": MODELS.get(name, name),
        "params": count_parameters(pipe.unet, pipe.label_encoder),
        "train_images": info.get("images_seen"),
        "train_minutes": round(info["train_seconds"] / 60, 1) if "train_seconds" in info else None,
        "hardware": info.get("hardware", "?"),
        "guidance_scale": guidance_scale,
    }
    evaluator = load_evaluator()
    if pipe.label_encoder is None:  # no labels to check: how sure is the evaluator that objects are there?
        n = 8 if quick else 64
        fake = pipe(batch_size=n, num_inference_steps=5 if quick else steps,
                    generator=torch.Generator().manual_seed(0), output_type="np").images
        real = (ProceduralScenes(seed=123).batch(0, n)[0] + 1) / 2
        row["max_prob"] = round(float(torch.sigmoid(classify(fake, evaluator)).max(1).values.mean()), 3)
        row["max_prob_real"] = round(float(torch.sigmoid(classify(real, evaluator)).max(1).values.mean()), 3)
        return row
    splits = splits_for(pipe)
    for split in splits:
        result = evaluate(pipe, split, guidance_scale=guidance_scale, num_inference_steps=5 if quick else steps,
                          evaluator=evaluator, limit=8 if quick else None)
        row[split] = round(result["accuracy"], 3)
        row[f"{split}_exact"] = round(result["exact_accuracy"], 3)
    # Sampling time for 32 images on this machine's CPU.
    start = time.perf_counter()
    pipe((load_split(splits[0]) * 32)[:32], guidance_scale=guidance_scale, num_inference_steps=5 if quick else steps,
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


def store_best_guidance(weights_dir: Path = WEIGHTS_DIR, samplers_path: Path | None = None) -> dict:
    """Write each model's best guidance of ``samplers.json`` (DDIM-25 sweep) into its ``model_index.json``.

    Only ``model_index.json`` changes; ``pipe(labels)``, ``sample`` and ``evaluate`` then use that
    guidance by default. Returns ``{name: guidance_scale}``.
    """
    from .pipeline import store_sampling

    samplers_path = Path(samplers_path) if samplers_path else Path(weights_dir) / "samplers.json"
    if not samplers_path.is_file():
        raise FileNotFoundError(f"no sampler table at {samplers_path}: run `python -m condiff benchmark --samplers`")
    stored = {}
    for name, entry in json.loads(samplers_path.read_text())["models"].items():
        if entry.get("best_guidance") is None or not (Path(weights_dir) / name / "model_index.json").is_file():
            continue
        sweep = entry.get("sweep") or [{}]
        store_sampling(Path(weights_dir) / name, entry["best_guidance"], sweep[0].get("sampler", "ddim"),
                       sweep[0].get("steps", 25))
        stored[name] = float(entry["best_guidance"])
    return stored


def results_table(weights_dir: Path = WEIGHTS_DIR, quick: bool = False) -> list[dict]:
    """Every shipped model with guidance off (w = 1) and at its best w."""
    rows = []
    for name in shipped_models(weights_dir):
        for w in sorted({1.0, best_guidance(name, weights_dir)}):
            rows.append(model_row(name, w, weights_dir, quick=quick))
            if rows[-1].get("test") is None and rows[-1].get("single") is None:
                break  # unconditional: no labels, no guidance
    return rows


def weights_digest(name: str, weights_dir: Path = WEIGHTS_DIR) -> str:
    """sha256 over a model's safetensors files: ties a results row to the weights it measured."""
    digest = hashlib.sha256()
    for path in sorted((weights_dir / name).rglob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def write_results(weights_dir: Path = WEIGHTS_DIR, quick: bool = False) -> dict:
    """Measure the table and save it as ``weights/results.json`` (what notebook 5 and the README show)."""
    from .train import hardware

    rows = results_table(weights_dir, quick=quick)
    results = {
        "settings": f"DDIM-{5 if quick else 25}, seed 0, evaluator weights/evaluator, sampling on {hardware()}",
        "digests": {name: weights_digest(name, weights_dir) for name in shipped_models(weights_dir)},
        "rows": rows,
    }
    if not quick:
        (weights_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        update_readme(results)
    return results


README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- results: written by `python -m condiff results` -->", "<!-- /results -->"


def update_readme(results: dict, readme: Path = README) -> None:
    """Put the table between the README's results markers (a clone's README; nothing if absent)."""
    if not readme.is_file() or START not in readme.read_text():
        return
    text = readme.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    table = f"{to_markdown(results['rows'])}\n\nMeasured with {results['settings']}."
    text = f"{head}{START}\n{table}\n{END}{tail}"
    if SAMPLERS_START in text:
        head, rest = text.split(SAMPLERS_START, 1)
        tables, tail = samplers_markdown(readme.parent / "weights"), rest.split(SAMPLERS_END, 1)[1]
        text = f"{head}{SAMPLERS_START}\n{tables}\n{SAMPLERS_END}{tail}"
    readme.write_text(text)


SAMPLERS_START = "<!-- samplers: written by `python -m condiff results` from weights/samplers.json -->"
SAMPLERS_END = "<!-- /samplers -->"


def samplers_markdown(weights_dir: Path = WEIGHTS_DIR) -> str:
    """``weights/samplers.json`` and ``weights/training_curves.json`` as two Markdown tables."""
    samplers = json.loads((weights_dir / "samplers.json").read_text())

    def pair(r):  # "test / new_test", or the single split; exact-set accuracy after it where measured
        splits = ["single"] if "single" in r else ["test", "new_test"]
        text = " / ".join(f"{r[s]:.3f}" for s in splits)
        if all(f"{s}_exact" in r for s in splits):
            text += " (exact " + " / ".join(f"{r[f'{s}_exact']:.3f}" for s in splits) + ")"
        return text

    columns = list(dict.fromkeys((r["sampler"], r["steps"]) for e in samplers["models"].values()
                                 for r in e["samplers"]))
    lines = [f"Accuracy (test / new_test, or `single`) by sampler, measured on {samplers['hardware']}; "
             f"{samplers['settings']}.", "",
             "| model | w | " + " | ".join(f"{s.upper()}-{n}" for s, n in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for name, entry in samplers["models"].items():
        for w in sorted({r["guidance_scale"] for r in entry["samplers"]}):
            cells = {(r["sampler"], r["steps"]): pair(r) for r in entry["samplers"] if r["guidance_scale"] == w}
            row = " | ".join(cells.get(c, "-") for c in columns)
            lines.append(f"| {MODELS.get(name, name)} | {w:g} | {row} |")
    path = weights_dir / "training_curves.json"
    if path.is_file():
        curves = json.loads(path.read_text())["curves"]
        names = list(curves)
        first = curves[names[0]]
        lines += ["", "Accuracy (test / new_test, DDIM-25, w = 2) of the snapshots taken during training:", "",
                  "| step | images seen | minutes | " + " | ".join(MODELS.get(n, n) for n in names) + " |",
                  "|---|---|---|" + "---|" * len(names)]
        for i, r in enumerate(first):
            cells = [pair(curves[n][i]) if i < len(curves[n]) else "-" for n in names]
            lines.append(f"| {r['step']:,} | {r['images_seen']:,} | {r['train_minutes']:.1f} ({r['hardware']}) | "
                         + " | ".join(cells) + " |")
        check = json.loads(path.read_text()).get("cpu_check")
        for name, rows in (check or {}).get("curves", {}).items():
            gpu = {r["step"]: r for r in curves.get(name, [])}
            for r in rows:
                same = f" (the GPU run at that step: {pair(gpu[r['step']])})" if r["step"] in gpu else ""
                lines += ["", f"The same recipe on the 2-core CPU ({MODELS.get(name, name)}): step {r['step']:,} "
                              f"after {r['train_minutes']:.1f} minutes on {r['hardware']}, {pair(r)}{same}."]
    return "\n".join(lines)


def to_markdown(rows: list[dict]) -> str:
    """The results table; exact-set columns appear when the rows have them (``test_exact``, ...)."""
    exact = any(k.endswith("_exact") for r in rows for k in r)
    head = ("| method | params | training images | training time | hardware | guidance w "
            "| test acc. | new_test acc. |" + (" test exact-set | new_test exact-set |" if exact else "")
            + " 32 images, DDIM-25 (CPU) |")
    lines = [head, "|" + "---|" * (11 if exact else 9)]

    def cell(value, fmt="{:.3f}", none="-"):
        return none if value is None else fmt.format(value)

    for r in rows:
        test = r.get("test", r.get("single"))
        conditional = test is not None
        exact_cells = [cell(r.get("test_exact", r.get("single_exact"))), cell(r.get("new_test_exact"))] if exact else []
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


# ---------------------------------------------------------------------------------------------
# Shipping a run and its card
# ---------------------------------------------------------------------------------------------

SHIPPED_FILES = ("model_index.json", "unet", "label_encoder", "scheduler", "history.json", "training.json",
                 "config.json", "diffusion_pytorch_model.safetensors")


def ship(run_dir: str | Path, name: str, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Copy a finished training run into ``weights/NAME``: the pipeline and its records, no checkpoint."""
    import shutil

    run_dir, target = Path(run_dir), weights_dir / name
    if not (run_dir / "training.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a finished training run (no training.json)")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for item in SHIPPED_FILES:
        source = run_dir / item
        if source.is_dir():
            shutil.copytree(source, target / item)
        elif source.is_file():
            shutil.copy2(source, target / item)
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_card(name: str, weights_dir: Path = WEIGHTS_DIR) -> str:
    """A Markdown card from the folder's own ``training.json`` and files: how the weights were made."""
    folder = weights_dir / name
    info = json.loads((folder / "training.json").read_text())
    recipe = info.get("recipe", {})
    lines = [f"## `{name}`", "", MODELS.get(name, "Scene evaluator (multi-label classifier)"), ""]
    facts = [
        ("command", f"`{info['command']}`"),
        ("commit", info.get("commit", "?")),
        ("hardware", info.get("hardware", "?") + (f", {info['processes']} process(es)" if "processes" in info else "")),
        ("wall time", f"{info['train_seconds'] / 60:.1f} min"),
        ("steps", info["steps"]),
        ("images seen", f"{info.get('images_seen', info['steps'] * info.get('batch_size', 0)):,}"),
        ("seed", info["seed"]),
    ]
    if "note" in info:
        facts.append(("note", info["note"]))
    if "final_loss" in info:
        facts.append(("final loss (mean of the last 100 steps)", f"{info['final_loss']:.4f}"))
    if "parameters" in info:
        facts.append(("parameters", f"{info['parameters']:,}"))
    if "accuracy_on_fresh_scenes" in info:
        facts.append(("top-k accuracy on 2,048 fresh rendered scenes", f"{info['accuracy_on_fresh_scenes']:.4f}"))
    if recipe:
        facts.append(("recipe", ", ".join(f"{k}={recipe[k]}" for k in
                                          ("mode", "beta_schedule", "block_out_channels", "batch_size",
                                           "learning_rate", "label_dropout", "ema_decay") if k in recipe)))
    lines += [f"- {key}: {value}" for key, value in facts]
    lines += ["", "| file | bytes | sha256 |", "|---|---|---|"]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        lines.append(f"| `{path.relative_to(folder)}` | {path.stat().st_size:,} | `{_sha256(path)}` |")
    return "\n".join(lines)


def cards_markdown(weights_dir: Path = WEIGHTS_DIR) -> str:
    """The text of ``weights/README.md``: one card per shipped folder, made from the folders themselves."""
    names = [n for n in [*MODELS, "evaluator"] if (weights_dir / n / "training.json").is_file()]
    header = [
        "# Shipped weights",
        "",
        "Each folder is a diffusers folder (`save_pretrained`: config.json + safetensors; EMA weights for",
        "the diffusion models), copied from a training run by `condiff.results.ship` without its resume",
        "checkpoint. This page is generated from the folders by `python -m condiff cards`; every figure",
        "below comes from the run's own `training.json`.",
        "",
        "\"CPU: x86_64\" is the machine this repository is developed and tested on: a 2-core Intel Xeon VM",
        "at 2.5 GHz with no GPU; runs that say \"1 threads\" trained two at a time, one thread each.",
        "Runs on a GPU name the card; their `note` says how the card was shared.",
        "",
    ]
    return "\n".join(header) + "\n" + "\n\n".join(model_card(n, weights_dir) for n in names) + "\n"


def write_cards(weights_dir: Path = WEIGHTS_DIR) -> Path:
    path = weights_dir / "README.md"
    path.write_text(cards_markdown(weights_dir))
    return path
