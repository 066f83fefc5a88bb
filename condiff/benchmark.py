"""Benchmarks: training throughput and sampling speed / accuracy, on this machine.

    python -m condiff benchmark            # prints a Markdown report

1. Training: images/s of ``condiff.train``'s step (channels_last memory format) against a naive
   step written the way the seed tutorials wrote it (default memory format), same model, same batch,
   measured in one run, alternating the two so that machine noise hits both alike.
2. Sampling: images/s and new_test accuracy of the shipped cosine model (notebook 5) for DDPM-1000,
   DDIM-50/25 and DPM-Solver++-25/10, at guidance 2.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from . import WEIGHTS_DIR
from .data.scenes import ProceduralScenes
from .models import build_models, predict_noise
from .recipes import get_recipe


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


def training_throughput(recipe_name: str = "time_sum", steps: int = 10, rounds: int = 3) -> dict:
    """Images/s of the condiff step and the naive step, alternating ``rounds`` times."""
    recipe = get_recipe(recipe_name)
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


def sampling(name: str = "time_sum_cosine", samplers=(("ddpm", 1000), ("ddim", 50), ("ddim", 25),
                                                          ("dpm++", 25), ("dpm++", 10)),
             guidance_scale: float = 2.0, limit: int | None = None) -> list[dict]:
    """Images/s and new_test accuracy of a shipped model for each (sampler, steps)."""
    from .evaluate import evaluate, load_evaluator
    from .pipeline import load_pipeline, make_scheduler

    pipe, evaluator = load_pipeline(WEIGHTS_DIR / name), load_evaluator()
    rows = []
    for sampler, steps in samplers:
        pipe.scheduler = make_scheduler(sampler, pipe.scheduler.config)
        r = evaluate(pipe, "new_test", guidance_scale=guidance_scale, num_inference_steps=steps,
                     evaluator=evaluator, limit=limit)
        rows.append({"sampler": sampler, "steps": steps, "images_per_second": len(r["cases"]) / r["seconds"],
                     "accuracy": r["accuracy"]})
    return rows


def report(quick: bool = False) -> str:
    from .train import hardware

    t = training_throughput(steps=1 if quick else 10, rounds=1 if quick else 3)
    lines = [f"Machine: {hardware()}", "",
             "| training step (time_sum UNet, batch 64) | images/s |", "|---|---|",
             f"| naive (default memory format) | {t['naive']:.1f} |",
             f"| condiff (channels_last) | {t['condiff']:.1f} |",
             f"| ratio | {t['ratio']:.2f}x |", "",
             "| sampler (time_sum_cosine, new_test, w = 2) | images/s | accuracy |", "|---|---|---|"]
    samplers = (("ddim", 5),) if quick else (("ddpm", 1000), ("ddim", 50), ("ddim", 25), ("dpm++", 25), ("dpm++", 10))
    for row in sampling(samplers=samplers, limit=8 if quick else None):
        lines.append(f"| {row['sampler']}-{row['steps']} | {row['images_per_second']:.1f} | {row['accuracy']:.3f} |")
    return "\n".join(lines)
