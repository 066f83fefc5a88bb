"""Benchmarks: training throughput and sampling speed / accuracy, on this machine.

    python -m condiff benchmark            # prints a Markdown report

1. Training (``throughput``): images/s of the seed tutorials' whole loop (scenes rendered one at a time
   on the CPU and batched by a DataLoader, fp32, a host sync every step) against condiff's ``train``
   (scenes drawn on the device, no sync within a step, fused AdamW on a GPU), same model and batch, in one
   run; condiff's in fp32 and, where the CPU has bf16 units, in bf16, side by side.
2. Sampling speed: images/s of the shipped cosine model (notebook 5) for each of ``SAMPLERS``, at w = 3.

Two more measurements take a GPU, or hours of CPU, and write JSON that notebook 5 and the README read:

    python -m condiff benchmark --samplers weights --device cuda --json weights/samplers.json
    python -m condiff benchmark --samplers weights --models object_tokens --sampler-list ddim-25,dpm++-10 \
        --json weights/samplers.json --merge    # one model again, on the CPU; the rest of the file stays
    python -m condiff benchmark --curve runs/time_sum_cosine --device cuda --json curve.json
    python -m condiff benchmark --curve ../runs/time_sum --record-leg   # a warm restart's curve, kept in weights/
    python -m condiff benchmark --device cuda --json weights/throughput.json

3. ``sampler_table``: every shipped model, the guidance sweep ``GUIDANCE_SCALES``, then each of
   ``SAMPLERS`` with guidance off and at the best w, on the full splits.
4. ``training_curve``: the accuracy of each snapshot a run kept (``train --snapshot-every``)
   against its training minutes: how long a recipe needs.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from .. import WEIGHTS_DIR
from ..data.iclevr import held_out_combinations, load_split
from ..data.scenes import ProceduralScenes
from ..evaluate import evaluate, load_evaluator
from ..models import build_denoiser, count_parameters
from ..pipeline import load_pipeline, make_scheduler
from ..recipes import RECIPES, Recipe, get_recipe
from ..runfolder import INDEX, atomic_write_text
from ..runinfo import hardware, weights_digest
from ..train import bf16_on_cpu, train
from .results import EXACT_COLUMNS, splits_for, title

SAMPLERS = (("ddim", 50), ("ddim", 25), ("dpm++", 50), ("dpm++", 25), ("dpm++", 10), ("ddpm", 1000))  # (name, steps)
GUIDANCE_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0)  # the DDIM-25 sweep that picks each model's best w


class _OneSceneAtATime(torch.utils.data.Dataset):
    """The seed tutorials' data: a Dataset of single scenes rendered on the CPU, batched by a DataLoader."""

    def __init__(self, recipe, length: int):
        self.length = length
        self.scenes = ProceduralScenes(recipe.image_size, recipe.max_objects, held_out_combinations(), recipe.seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        images, labels = self.scenes.batch(i, 1)  # one scene: (1, 3, H, W), (1, 24)
        return images[0], labels[0]


def scenes_per_second(source, batch_size: int = 256, seconds: float = 3.0) -> float:
    """Scenes/s of a data source's ``batch`` (objects, images, labels), waiting for a GPU at the end."""
    sync = torch.cuda.synchronize if getattr(source, "device", torch.device("cpu")).type == "cuda" else (lambda: None)
    source.batch(0, batch_size)  # warm-up: caches, kernels
    sync()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        source.batch(steps, batch_size)
        steps += 1
    sync()
    return steps * batch_size / (time.perf_counter() - start)


def throughput(device: str = "cpu", recipe: Recipe | str = "time_sum", batch_size: int = 256, steps: int = 20,
               naive_workers: int | None = None, compile_mode: str | None = None, quick: bool = False) -> dict:
    """Training images/s of the seed tutorials' loop and of condiff's, same model and batch, in one run.

    naive: a DataLoader of CPU-rendered scenes (``naive_workers`` processes; default 4 on a GPU, 0 on the
    CPU), fp32, plain AdamW, and ``loss.item()`` every step, as the seed tutorials wrote it.
    condiff: ``condiff.train.train`` itself: scenes drawn on the device, no wait for it within a step,
    fused AdamW on a GPU, ``compile_mode`` if given; in the recipe's precision on a GPU, in fp32 on the CPU
    (``condiff_images_per_s``) and in bf16 where the CPU has bf16 units (``condiff_bf16_images_per_s``,
    ``None`` elsewhere). Each does ``steps`` warm-up steps, then ``steps`` timed ones; both include gradient
    clipping and EMA. ``quick``: the recipe's ``tiny()`` model, 2 + 2 steps (a smoke test). The result also
    holds the renderer's scenes/s on ``device`` at this batch size (``scenes_per_s``) and the model's size.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}; allowed: cpu, cuda")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps={steps}, batch_size={batch_size}: both must be at least 1")
    recipe = (get_recipe(recipe) if isinstance(recipe, str) else recipe).with_overrides(batch_size=batch_size)
    if quick:
        recipe, steps = recipe.tiny(), 2
    naive_workers = (4 if device == "cuda" else 0) if naive_workers is None else naive_workers
    naive, parameters = naive_images_per_s(recipe, device, steps, naive_workers)
    scenes = ProceduralScenes(recipe.image_size, recipe.max_objects, held_out_combinations(), recipe.seed,
                              device=device)

    def condiff(precision: str) -> float:  # train() itself; losses read back after the warm-up and at the end
        with tempfile.TemporaryDirectory() as out:
            train(recipe.with_overrides(max_steps=2 * steps, checkpoint_every=2 * steps, mixed_precision=precision),
                  out, data=scenes, progress=False, log_every=steps, compile_mode=compile_mode, device=device)
            history = json.loads((Path(out) / "history.json").read_text())
        return steps * recipe.batch_size / (history[1]["seconds"] - history[0]["seconds"])

    main = condiff(recipe.mixed_precision if device == "cuda" else "no")
    bf16 = condiff("bf16") if device == "cpu" and bf16_on_cpu() else None
    return {"device": device, "hardware": hardware(), "threads": torch.get_num_threads(), "recipe": recipe.name,
            "parameters": parameters, "batch_size": recipe.batch_size, "image_size": recipe.image_size,
            "timed_steps": steps, "naive_workers": naive_workers,
            "mixed_precision": recipe.mixed_precision if device == "cuda" else "no", "compile_mode": compile_mode,
            "quick": quick, "torch": torch.__version__, "naive_images_per_s": round(naive, 1),
            "condiff_images_per_s": round(main, 1), "ratio": round(main / naive, 2),
            "condiff_bf16_images_per_s": None if bf16 is None else round(bf16, 1),
            "scenes_per_s": round(scenes_per_second(scenes, recipe.batch_size, 0.2 if quick else 3.0))}


def naive_images_per_s(recipe: Recipe, device: str, steps: int, workers: int) -> tuple[float, int]:
    """Images/s of the seed tutorials' loop over ``steps`` timed steps (after as many warm-up ones), and the
    model's parameter count: the recipe's own model (``recipe.model_kwargs()``), as ``train`` builds it."""
    torch.manual_seed(recipe.seed)
    denoiser = build_denoiser(recipe.mode, **recipe.model_kwargs(), max_objects=recipe.max_objects).to(device)
    params = list(denoiser.parameters())
    optimizer = torch.optim.AdamW(params, lr=recipe.scaled_learning_rate(), weight_decay=0.0)
    ema = EMAModel(params, decay=recipe.ema_decay)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule=recipe.beta_schedule)
    B, sync = recipe.batch_size, torch.cuda.synchronize if device == "cuda" else (lambda: None)
    loader = torch.utils.data.DataLoader(_OneSceneAtATime(recipe, 2 * steps * B), batch_size=B, shuffle=True,
                                         num_workers=workers, drop_last=True)
    for i, (x0, labels) in enumerate(loader):
        if i == steps:
            sync()
            start = time.perf_counter()
        x0, labels = x0.to(device), labels.to(device)
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (B,), device=device)
        labels = labels * (torch.rand(B, device=device) >= recipe.label_dropout)[:, None]
        loss = F.mse_loss(denoiser(scheduler.add_noise(x0, noise, t), t, labels), noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        optimizer.step()
        ema.step(params)
        loss.item()  # the host waits for the device every step
    return steps * B / (time.perf_counter() - start), count_parameters(denoiser)


def sampling_speed(name: str = "time_sum_cosine", samplers=SAMPLERS, guidance_scale: float = 3.0,
                   images: int = 8) -> list[dict]:
    """Images/s of a shipped model on this machine for each (sampler, steps), ``images`` new_test cases.

    Speed only: a handful of images says nothing about accuracy (``sampler_table`` measures that).
    """
    pipe = load_pipeline(WEIGHTS_DIR / name)
    pipe.set_progress_bar_config(disable=True)
    cases = load_split("new_test")[:images]
    rows = []
    for sampler, steps in samplers:
        pipe.scheduler = make_scheduler(sampler, pipe.scheduler.config)
        start = time.perf_counter()
        pipe(cases, guidance_scale=guidance_scale, num_inference_steps=steps,
             generator=torch.Generator().manual_seed(0), output_type="np")
        rows.append({"sampler": sampler, "steps": steps,
                     "images_per_second": len(cases) / (time.perf_counter() - start)})
    return rows


def report(quick: bool = False) -> str:
    """Training images/s (the naive loop, condiff's in fp32 and in bf16) and sampling speed, as Markdown."""
    t = throughput(batch_size=64, steps=10, quick=quick)
    bf16 = (f"{t['condiff_bf16_images_per_s']:.1f}" if t["condiff_bf16_images_per_s"] is not None else
            "not available: this CPU has no bf16 units (avx512_bf16 or amx)")
    lines = [f"Machine: {hardware()}", "",
             f"| training ({t['recipe']} UNet, {t['image_size']}x{t['image_size']}, batch {t['batch_size']}) "
             "| images/s |", "|---|---|",
             f"| naive loop (DataLoader, fp32, a sync every step) | {t['naive_images_per_s']:.1f} |",
             f"| condiff train, fp32 | {t['condiff_images_per_s']:.1f} |",
             f"| condiff train, bf16 | {bf16} |",
             f"| ratio (condiff fp32 / naive) | {t['ratio']:.2f}x |", "",
             "| sampler (time_sum_cosine, 8 new_test cases, w = 3) | images/s |", "|---|---|"]
    for row in sampling_speed(samplers=(("ddim", 5),) if quick else SAMPLERS, images=2 if quick else 8):
        lines.append(f"| {row['sampler']}-{row['steps']} | {row['images_per_second']:.2f} |")
    lines += ["", "Accuracy per sampler: weights/samplers.json (python -m condiff benchmark --samplers weights)."]
    return "\n".join(lines)


def score(pipe, sampler: str, steps: int, guidance_scale: float, evaluator, limit=None) -> dict:
    """One row: accuracy and exact-scene accuracy on each split the pipeline is scored on, and images/s."""
    row = {"sampler": sampler, "steps": steps, "guidance_scale": guidance_scale}
    images = seconds = 0
    for split in splits_for(pipe):
        r = evaluate(pipe, split, guidance_scale=guidance_scale, scheduler=sampler, num_inference_steps=steps,
                     evaluator=evaluator, limit=limit)
        row[split] = round(r["accuracy"], 6)  # 6 decimals: a table that prints 3 rounds once
        row[f"{split}_exact_scene"] = round(r["exact_scene_accuracy"], 6)
        images, seconds = images + len(r["cases"]), seconds + r["seconds"]
    row["images_per_second"] = round(images / seconds, 2)
    return row


def sampler_table(weights_dir: str | Path = WEIGHTS_DIR, names=None, guidance_scales=GUIDANCE_SCALES,
                  samplers=SAMPLERS, device: str = "cpu", limit: int | None = None, on_row=None) -> dict:
    """Guidance sweep (DDIM-25), then every sampler at w = 1 (guidance off) and the best w, per model.

    Returns ``{"hardware": ..., "models": {name: {"sweep": [rows], "best_guidance": w, "samplers": [rows]}}}``;
    a row holds the accuracy per split and images/s on ``device``. ``on_row(result)`` is called
    after every row, e.g. to save partial results of a time-boxed run.
    """
    weights_dir = Path(weights_dir)
    found = [n for n in names or RECIPES if (weights_dir / n / "model_index.json").is_file()]
    if not found:
        what = "does not exist" if not weights_dir.exists() else "holds no model folder"
        raise FileNotFoundError(f"--samplers {weights_dir} {what}: give a folder of pipelines named after the "
                                f"recipes ({', '.join(names or RECIPES)}), like weights/")
    evaluator = load_evaluator()
    out = {"hardware": hardware(), "device": device,
           "settings": (f"first {limit} cases of each split" if limit else
                        "full splits (test and new_test: 64 cases each; single: 48)")
           + f", seed 0, evaluator weights/evaluator {weights_digest(WEIGHTS_DIR / 'evaluator')[:12]}",
           "digests": {}, "models": {}}
    for name in names or RECIPES:
        if not (weights_dir / name / INDEX).is_file():
            continue
        pipe = load_pipeline(weights_dir / name).to(device)
        if pipe.label_encoder is None:
            continue  # nothing to score against labels
        out["digests"][name] = weights_digest(weights_dir / name)  # ties the table to these weights
        entry = out["models"][name] = {"sweep": [], "best_guidance": None, "samplers": []}
        for w in guidance_scales:
            entry["sweep"].append(score(pipe, "ddim", 25, w, evaluator, limit))
            if on_row:
                on_row(out)
        best = max(entry["sweep"], key=lambda r: sum(r[s] for s in splits_for(pipe)))["guidance_scale"]
        entry["best_guidance"] = best
        for sampler, steps in samplers:
            for w in sorted({1.0, best}):
                entry["samplers"].append(score(pipe, sampler, steps, w, evaluator, limit))
                if on_row:
                    on_row(out)
    return out


def print_last_row(table: dict) -> None:
    """A line per scored row of a sampler table, as it comes (a full table takes many minutes on a CPU)."""
    name, entry = list(table["models"].items())[-1]
    r = (entry["samplers"] or entry["sweep"])[-1]
    scores = ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k not in ("sampler", "steps", "guidance_scale",
                                                                          "images_per_second"))
    print(f"{name}: {r['sampler']}-{r['steps']}, w = {r['guidance_scale']:g}: {scores} "
          f"({r['images_per_second']:.2f} images/s)", flush=True)


def merge_sampler_tables(earlier: dict, table: dict) -> dict:
    """``table``'s models (a later ``sampler_table`` of some models) replace theirs in ``earlier``. A model
    measured on another machine, device or with other settings than the file's own keeps them in its entry,
    so the file never says a row was measured where it was not."""
    where = ("hardware", "device", "settings")
    merged = {**earlier, "digests": {**earlier["digests"], **table["digests"]}, "models": dict(earlier["models"])}
    for name, entry in table["models"].items():
        merged["models"][name] = {**entry, **{key: table[key] for key in where if table[key] != earlier.get(key)}}
    if all(any(key in entry for key in where) for entry in merged["models"].values()):
        # No model is left of the file's own measurement: the latest one heads the file instead, and what
        # the file said of the old one (e.g. "measured_by") goes with it.
        merged = {**{k: v for k, v in table.items() if k != "models"}, "digests": merged["digests"],
                  "models": {name: {k: v for k, v in entry.items() if not (k in where and v == table[k])}
                             for name, entry in merged["models"].items()}}
    return merged


def training_curve(run_dir: str | Path, guidance_scale: float = 2.0, sampler: str = "ddim", steps: int = 25,
                   device: str = "cpu", limit: int | None = None) -> list[dict]:
    """Accuracy of every snapshot in ``run_dir/snapshots`` against the training time it had had."""
    snapshots = sorted((Path(run_dir) / "snapshots").glob("step-*"))
    if not snapshots:
        what = "does not exist" if not Path(run_dir).exists() else "holds no snapshots/step-NNNNNN folders"
        raise FileNotFoundError(f"--curve {run_dir} {what}: give a run trained with --snapshot-every N")
    evaluator, rows = load_evaluator(), []
    for snap in snapshots:
        info = json.loads((snap / "training.json").read_text())
        pipe = load_pipeline(snap).to(device)
        row = {"step": info["steps"], "images_seen": info["images_seen"],
               "train_minutes": round(info["train_seconds"] / 60, 2), "hardware": info["hardware"]}
        if "images_seen_total" in info:  # a warm restart: the images of every run behind the snapshot
            row["images_seen_total"] = info["images_seen_total"]
        row.update(score(pipe, sampler, steps, guidance_scale, evaluator, limit))
        rows.append(row)
    return rows


def warm_restart_of(run_dir: str | Path) -> dict:
    """The ``training.json`` of a warm restart (``train --init-from``); a clear error for any other folder."""
    path = Path(run_dir) / "training.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    if not info.get("legs"):
        raise ValueError(f"--record-leg: {run_dir} is not a warm restart (its training.json lists no earlier "
                         "runs); give a run trained with train --init-from")
    return info


def record_warm_restart(run_dir: str | Path, rows: list[dict], weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Keep a warm restart's curve (``training_curve``'s rows) in ``weights/training_curves.json``, under
    ``warm_restarts[MODEL][RUN]`` (RUN = 2 for the first restart); scoring the same run (same command and note)
    again replaces it. Another run from the same weights, after one that was held back, is kept beside it as
    "8b", "8c", ...: a held-back run's curve is never overwritten."""
    info, path = warm_restart_of(run_dir), weights_dir / "training_curves.json"
    curves = json.loads(path.read_text()) if path.is_file() else {}
    runs = curves.setdefault("warm_restarts", {}).setdefault(info["recipe"]["name"], {})
    entry = {"command": info.get("command", ""), "note": info.get("note", ""), "rows": rows}
    number = str(len(info["legs"]) + 1)
    key = next(k for k in [number, *(number + c for c in "bcdefghijklmnopqrstuvwxyz")]
               if k not in runs or (runs[k]["command"], runs[k]["note"]) == (entry["command"], entry["note"]))
    runs[key] = entry
    atomic_write_text(path, json.dumps(curves, indent=1) + "\n")
    return path


def samplers_markdown(weights_dir: Path = WEIGHTS_DIR) -> str:
    """``weights/samplers.json`` and ``weights/training_curves.json`` as two Markdown tables."""
    samplers = json.loads((weights_dir / "samplers.json").read_text())

    def pair(r):  # "test / new_test", or the single split; the exact accuracy after it where measured
        splits = ["single"] if "single" in r else ["test", "new_test"]
        text = " / ".join(f"{r[s]:.3f}" for s in splits)
        for suffix, name in EXACT_COLUMNS.items():
            if all(f"{s}{suffix}" in r for s in splits):
                text += f" ({name} " + " / ".join(f"{r[f'{s}{suffix}']:.3f}" for s in splits) + ")"
        return text

    columns = list(dict.fromkeys((r["sampler"], r["steps"]) for e in samplers["models"].values()
                                 for r in e["samplers"]))
    lines = [f"Accuracy (test / new_test, or `single`) by sampler, measured on {samplers['hardware']}; "
             f"{samplers['settings']}.", "",
             "| model | w | " + " | ".join(f"{s.upper()}-{n}" for s, n in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    elsewhere = []  # models measured apart from the rest (merge_sampler_tables): where and how, under the table
    for name, entry in samplers["models"].items():
        mark = "\\*" * (len(elsewhere) + 1) if "hardware" in entry or "settings" in entry else ""  # \* not a list
        if mark:
            elsewhere.append(f"{mark} measured on {entry.get('hardware', samplers['hardware'])}; "
                             f"{entry.get('settings', samplers['settings'])}.")
        for w in sorted({r["guidance_scale"] for r in entry["samplers"]}):
            cells = {(r["sampler"], r["steps"]): pair(r) for r in entry["samplers"] if r["guidance_scale"] == w}
            row = " | ".join(cells.get(c, "-") for c in columns)
            lines.append(f"| {title(name)}{mark} | {w:g} | {row} |")
    lines += [""] + elsewhere if elsewhere else []
    path = weights_dir / "training_curves.json"
    if path.is_file():
        curves = json.loads(path.read_text())["curves"]
        names = list(curves)
        first = curves[names[0]]
        lines += ["", "Accuracy (test / new_test, DDIM-25, w = 2) of the snapshots taken during training:", "",
                  "| step | images seen | minutes | " + " | ".join(title(n) for n in names) + " |",
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
                lines += ["", f"The same recipe on the 2-core CPU ({title(name)}): step {r['step']:,} "
                              f"after {r['train_minutes']:.1f} minutes on {r['hardware']}, {pair(r)}{same}."]
        restarts = json.loads(path.read_text()).get("warm_restarts", {})
        if restarts:  # benchmark --curve RUN --record-leg: the runs that continued shipped weights
            lines += ["", "Warm restarts (`train --init-from`), scored the same way; images of all runs so far, "
                          "minutes of this run:", "", "| model | run | step | images | minutes | test / new_test |",
                      "|---|---|---|---|---|---|"]
            notes = []
            for name, runs in restarts.items():
                for run, entry in runs.items():
                    said = [f"`{entry['command']}`" if entry["command"] else "", entry["note"]]
                    notes.append(f"{title(name)}, run {run}: " + "; ".join(filter(None, said)))
                    lines += [f"| {title(name)} | {run} | {r['step']:,} | {r['images_seen_total']:,} | "
                              f"{r['train_minutes']:.1f} ({r['hardware']}) | {pair(r)} |" for r in entry["rows"]]
            lines += [""] + [f"- {n}." for n in notes]
    return "\n".join(lines)

