"""Benchmarks: training throughput and sampling speed / accuracy, on this machine.

    python -m condiff benchmark            # prints a Markdown report

1. Training: images/s of ``condiff.train``'s step (channels_last memory format) against a naive
   step written the way the seed tutorials wrote it (default memory format), same model, same batch,
   measured in one run, alternating the two so that machine noise hits both alike.
2. Sampling speed: images/s of the shipped cosine model (notebook 5) for DDPM-1000, DDIM-50/25
   and DPM-Solver++-25/10, at its best guidance (w = 3).

Two more measurements take a GPU, or hours of CPU, and write JSON that notebook 5 and the README read:

    python -m condiff benchmark --samplers weights --device cuda --json weights/samplers.json
    python -m condiff benchmark --curve runs/time_sum_cosine --device cuda --json curve.json
    python -m condiff benchmark --device cuda --json weights/throughput.json

3. ``sampler_table``: every shipped model, guidance off and on, DDPM-1000 against DDIM and
   DPM-Solver++ at 50 / 25 / 10 steps, on the full splits.
4. ``training_curve``: the accuracy of each snapshot a run kept (``train --snapshot-every``)
   against its training minutes: how long a recipe needs.
5. ``throughput``: training images/s of the seed tutorials' whole loop (scenes rendered one at a time on
   the CPU and batched by a DataLoader, fp32, a host sync every step) against condiff's ``train`` (scenes
   drawn on the device, no sync within a step, bf16 and fused AdamW on a GPU), same model and batch, in
   one run.
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
from ..models import build_models, predict_noise
from ..pipeline import load_pipeline, make_scheduler
from ..recipes import RECIPES, get_recipe
from ..runinfo import hardware, weights_digest
from ..train import train
from .results import EXACT_COLUMNS, splits_for, title


def _train_step_timer(channels_last: bool, recipe, batches):
    torch.manual_seed(0)
    unet, encoder = build_models(recipe.mode, recipe.image_size, recipe.block_out_channels, recipe.layers_per_block)
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    params = [p for m in (unet, encoder) for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step(i):
        x0, labels = batches[i % len(batches)]
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (x0.shape[0],))
        x_t = (x0 + noise) / 2  # the arithmetic of add_noise is the same for both; time the network
        if channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        loss = F.mse_loss(predict_noise(unet, encoder, x_t, t, labels), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def training_throughput(recipe_name: str = "time_sum", steps: int = 10, rounds: int = 3,
                        batch_size: int = 64) -> dict:
    """Images/s of the condiff step and the naive step, alternating ``rounds`` times."""
    recipe = get_recipe(recipe_name).with_overrides(batch_size=batch_size)
    batches = [ProceduralScenes(seed=0).batch(i, recipe.batch_size) for i in range(4)]
    steps_by_name = {"naive": _train_step_timer(False, recipe, batches),
                     "condiff": _train_step_timer(True, recipe, batches)}
    seconds = dict.fromkeys(steps_by_name, 0.0)
    for step in steps_by_name.values():  # warm-up
        step(0)
    for _ in range(rounds):
        for name, step in steps_by_name.items():
            start = time.perf_counter()
            for i in range(steps):
                step(i)
            seconds[name] += time.perf_counter() - start
    images = steps * rounds * recipe.batch_size
    result = {name: images / s for name, s in seconds.items()}
    result["ratio"] = result["condiff"] / result["naive"]
    result["threads"] = torch.get_num_threads()
    return result


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


def throughput(device: str = "cpu", recipe_name: str = "time_sum", batch_size: int = 256, steps: int = 20,
               naive_workers: int | None = None, compile_mode: str | None = None, quick: bool = False) -> dict:
    """Training images/s of the seed tutorials' loop and of condiff's, same model and batch, in one run.

    naive: a DataLoader of CPU-rendered scenes (``naive_workers`` processes; default 4 on a GPU, 0 on the
    CPU), fp32, plain AdamW, and ``loss.item()`` every step, as the seed tutorials wrote it.
    condiff: ``condiff.train.train`` itself: scenes drawn on the device, no wait for it within a step,
    bf16 autocast and fused AdamW on a GPU (fp32 on the CPU), ``compile_mode`` if given.
    Each does ``steps`` warm-up steps, then ``steps`` timed ones; both include gradient clipping and EMA.
    ``quick``: a 16x16 toy UNet, batch 8, 2 + 2 steps (a smoke test). The result also holds the renderer's
    scenes/s on ``device`` at this batch size (``scenes_per_s``).
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}; allowed: cpu, cuda")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps={steps}, batch_size={batch_size}: both must be at least 1")
    recipe = get_recipe(recipe_name).with_overrides(batch_size=batch_size)
    if quick:
        recipe, steps = recipe.with_overrides(image_size=16, block_out_channels=(8, 16), batch_size=8), 2
    naive_workers = (4 if device == "cuda" else 0) if naive_workers is None else naive_workers
    B = recipe.batch_size
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    # The naive loop.
    torch.manual_seed(recipe.seed)
    unet, encoder = build_models(recipe.mode, recipe.image_size, recipe.block_out_channels, recipe.layers_per_block,
                                 max_objects=recipe.max_objects)
    models = [m.to(device) for m in (unet, encoder) if m is not None]
    params = [p for m in models for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=recipe.scaled_learning_rate(), weight_decay=0.0)
    ema = EMAModel(params, decay=recipe.ema_decay)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule=recipe.beta_schedule)
    loader = torch.utils.data.DataLoader(_OneSceneAtATime(recipe, 2 * steps * B), batch_size=B, shuffle=True,
                                         num_workers=naive_workers, drop_last=True)
    losses = []
    for i, (x0, labels) in enumerate(loader):
        if i == steps:
            sync()
            start = time.perf_counter()
        x0, labels = x0.to(device), labels.to(device)
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (B,), device=device)
        labels = labels * (torch.rand(B, device=device) >= recipe.label_dropout)[:, None]
        pred = predict_noise(unet, encoder, scheduler.add_noise(x0, noise, t), t,
                             labels if encoder is not None else None)
        loss = F.mse_loss(pred, noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        optimizer.step()
        ema.step(params)
        losses.append(loss.item())  # the host waits for the device every step
    naive = steps * B / (time.perf_counter() - start)

    # condiff's loop: train() itself, losses read back after the warm-up steps and at the end only.
    settings = dict(size=recipe.image_size, max_objects=recipe.max_objects, exclude=held_out_combinations(),
                    seed=recipe.seed)
    with tempfile.TemporaryDirectory() as out:
        train(recipe.with_overrides(max_steps=2 * steps, checkpoint_every=2 * steps), out,
              data=ProceduralScenes(**settings, device=device),
              progress=False, log_every=steps, compile_mode=compile_mode, device=device)
        history = json.loads((Path(out) / "history.json").read_text())
    condiff = steps * B / (history[2 * steps - 1]["seconds"] - history[steps - 1]["seconds"])
    seconds = 0.2 if quick else 3.0
    scenes = scenes_per_second(ProceduralScenes(**settings, device=device), B, seconds)
    return {"device": device, "hardware": hardware(), "threads": torch.get_num_threads(), "recipe": recipe.name,
            "batch_size": B, "image_size": recipe.image_size, "timed_steps": steps, "naive_workers": naive_workers,
            "mixed_precision": recipe.mixed_precision if device == "cuda" else "no", "compile_mode": compile_mode,
            "quick": quick, "torch": torch.__version__, "naive_images_per_s": round(naive, 1),
            "condiff_images_per_s": round(condiff, 1), "ratio": round(condiff / naive, 2),
            "scenes_per_s": round(scenes)}


def sampling_speed(name: str = "time_sum_cosine", samplers=(("ddpm", 1000), ("ddim", 50), ("ddim", 25),
                                                                ("dpm++", 25), ("dpm++", 10)),
                   guidance_scale: float = 3.0, images: int = 8) -> list[dict]:
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
    t = training_throughput(steps=1 if quick else 10, rounds=1 if quick else 3)
    lines = [f"Machine: {hardware()}", "",
             "| training step (time_sum UNet, batch 64) | images/s |", "|---|---|",
             f"| naive (default memory format) | {t['naive']:.1f} |",
             f"| condiff (channels_last) | {t['condiff']:.1f} |",
             f"| ratio | {t['ratio']:.2f}x |", "",
             "| sampler (time_sum_cosine, 8 new_test cases, w = 3) | images/s |", "|---|---|"]
    samplers = (("ddim", 5),) if quick else (("ddpm", 1000), ("ddim", 50), ("ddim", 25), ("dpm++", 25), ("dpm++", 10))
    for row in sampling_speed(samplers=samplers, images=2 if quick else 8):
        lines.append(f"| {row['sampler']}-{row['steps']} | {row['images_per_second']:.2f} |")
    lines += ["", "Accuracy per sampler: weights/samplers.json (python -m condiff benchmark --samplers weights)."]
    return "\n".join(lines)


SAMPLERS = (("ddim", 50), ("ddim", 25), ("dpm++", 50), ("dpm++", 25), ("dpm++", 10), ("ddpm", 1000))


def _score(pipe, sampler: str, steps: int, guidance_scale: float, evaluator, limit=None) -> dict:
    row = {"sampler": sampler, "steps": steps, "guidance_scale": guidance_scale}
    images = seconds = 0
    for split in splits_for(pipe):
        r = evaluate(pipe, split, guidance_scale=guidance_scale, scheduler=sampler, num_inference_steps=steps,
                     evaluator=evaluator, limit=limit)
        row[split] = round(r["accuracy"], 4)
        row[f"{split}_exact_scene"] = round(r["exact_scene_accuracy"], 4)
        images, seconds = images + len(r["cases"]), seconds + r["seconds"]
    row["images_per_second"] = round(images / seconds, 2)
    return row


def sampler_table(weights_dir: str | Path = WEIGHTS_DIR, names=None, guidance_scales=(1.0, 1.5, 2.0, 3.0, 4.0),
                  samplers=SAMPLERS, device: str = "cpu", limit: int | None = None, on_row=None) -> dict:
    """Guidance sweep (DDIM-25), then every sampler at w = 1 (guidance off) and the best w, per model.

    Returns ``{"hardware": ..., "models": {name: {"sweep": [rows], "best_guidance": w, "samplers": [rows]}}}``;
    a row holds the accuracy per split and images/s on ``device``. ``on_row(result)`` is called
    after every row, e.g. to save partial results of a time-boxed run.
    """
    weights_dir, evaluator = Path(weights_dir), load_evaluator()
    out = {"hardware": hardware(), "device": device,
           "settings": (f"first {limit} cases of each split" if limit else
                        "full splits (test and new_test: 64 cases each; single: 48)")
           + ", seed 0, evaluator weights/evaluator",
           "digests": {}, "models": {}}
    for name in names or RECIPES:
        if not (weights_dir / name / "model_index.json").is_file():
            continue
        pipe = load_pipeline(weights_dir / name).to(device)
        if pipe.label_encoder is None:
            continue  # nothing to score against labels
        out["digests"][name] = weights_digest(weights_dir / name)  # ties the table to these weights
        entry = out["models"][name] = {"sweep": [], "best_guidance": None, "samplers": []}
        for w in guidance_scales:
            entry["sweep"].append(_score(pipe, "ddim", 25, w, evaluator, limit))
            if on_row:
                on_row(out)
        best = max(entry["sweep"], key=lambda r: sum(r[s] for s in splits_for(pipe)))["guidance_scale"]
        entry["best_guidance"] = best
        for sampler, steps in samplers:
            for w in sorted({1.0, best}):
                entry["samplers"].append(_score(pipe, sampler, steps, w, evaluator, limit))
                if on_row:
                    on_row(out)
    return out


def training_curve(run_dir: str | Path, guidance_scale: float = 2.0, sampler: str = "ddim", steps: int = 25,
                   device: str = "cpu", limit: int | None = None) -> list[dict]:
    """Accuracy of every snapshot in ``run_dir/snapshots`` against the training time it had had."""
    evaluator, rows = load_evaluator(), []
    for snap in sorted((Path(run_dir) / "snapshots").glob("step-*")):
        info = json.loads((snap / "training.json").read_text())
        pipe = load_pipeline(snap).to(device)
        row = {"step": info["steps"], "images_seen": info["images_seen"],
               "train_minutes": round(info["train_seconds"] / 60, 2), "hardware": info["hardware"]}
        row.update(_score(pipe, sampler, steps, guidance_scale, evaluator, limit))
        rows.append(row)
    return rows


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
    for name, entry in samplers["models"].items():
        for w in sorted({r["guidance_scale"] for r in entry["samplers"]}):
            cells = {(r["sampler"], r["steps"]): pair(r) for r in entry["samplers"] if r["guidance_scale"] == w}
            row = " | ".join(cells.get(c, "-") for c in columns)
            lines.append(f"| {title(name)} | {w:g} | {row} |")
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
    return "\n".join(lines)

