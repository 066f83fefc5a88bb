"""``python -m condiff compare``: which training recipe learns the most per image, measured on a CPU.

    python -m condiff compare --out ../runs/compare                      # every variant, in VARIANTS' order
    python -m condiff compare --out ../runs/compare --variants baseline,object_tokens
    python -m condiff compare --out ../runs/compare --speed              # images/s of each (an idle machine)

Each variant changes one thing against ``BASELINE`` (notebook 3's time-sum recipe at batch 64, the
batch a CPU trains fastest per image) and trains from scratch for the same number of images, the
learning-rate schedule run to its end. Its EMA snapshots (every ``--snapshot-images``) are scored on
the full ``test`` and ``new_test`` splits with DDIM-25 at guidance 2: i-CLEVR's top-k accuracy and
the exact-scene accuracy (each asked object exactly once and nothing else; ``condiff.evaluate``).
Run it again to resume: finished runs are skipped, an interrupted one continues from its last
checkpoint, scored snapshots are not scored again (unless the evaluator changed). A variant whose
every snapshot is in ``scores.json`` is skipped even when its run folder is gone, so a comparison
carries over to a new machine by copying ``weights/compare.json`` to ``OUT/scores.json``. ``scores.json``
in ``--out`` holds everything measured; ``--ship`` copies it to ``weights/compare.json`` and writes
``table()`` into the README.

Training speed is measured apart (``--speed``), with nothing else running, since runs in the
background share the CPU with other work and their own clocks say little.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..evaluate import WEIGHTS_DIR, evaluate, load_evaluator
from ..models import build_denoiser
from ..pipeline import load_pipeline
from ..recipes import get_recipe
from ..runfolder import atomic_write_text
from ..runinfo import hardware, weights_digest
from ..train import diffusion_loss, mixed_precision, sample_timesteps, train

BASELINE = get_recipe("time_sum").with_overrides(batch_size=64)
# One change each against BASELINE, in the order they are trained.
VARIANTS = {
    "object_tokens": {"mode": "object_tokens", "attention_levels": 2},  # one token per object, cross-attention
    "baseline": {},
    "min_snr5": {"snr_gamma": 5.0},  # Min-SNR-gamma loss weighting (Hang et al. 2023)
    "baseline_seed1": {"seed": 1},  # the noise between two runs of one recipe
    "batch32": {"batch_size": 32},
    "high_noise": {"timestep_sampling": "high_noise"},
    "scale_shift": {"time_scale_shift": "scale_shift"},  # AdaGN: the embedding scales and shifts the norms
    "label_mlp": {"label_hidden_dim": 768},  # a 4x wider hidden layer in the label MLP
    "min_snr2": {"snr_gamma": 2.0},
    "min_snr5_seed1": {"snr_gamma": 5.0, "seed": 1},
    "batch128": {"batch_size": 128},
    # The winners combined, checked once.
    "object_tokens_snr5": {"mode": "object_tokens", "attention_levels": 2, "snr_gamma": 5.0},
    "label_mlp_snr5": {"label_hidden_dim": 768, "snr_gamma": 5.0},
}
GUIDANCE, SAMPLER, STEPS, SPLITS = 2.0, "ddim", 25, ("test", "new_test")
NOT_RECORDED = "not recorded"  # the machine of a variant from a file that named none


def variant(name: str, images: int) -> tuple:
    """The recipe of variant ``name`` for ``images`` training images, and its checkpoint interval in steps."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
    recipe = BASELINE.with_overrides(name=f"compare-{name}", **VARIANTS[name])
    return recipe.with_overrides(max_steps=images // recipe.batch_size)


def run_variant(name: str, out: Path, images: int, snapshot_images: int) -> dict:
    """Train (or resume) one variant into ``out/NAME``, keeping a snapshot every ``snapshot_images``."""
    recipe = variant(name, images)
    snapshot_every = snapshot_images // recipe.batch_size
    checkpoint_every = snapshot_every  # a checkpoint at least every 8,000 images, so a kill loses little
    while checkpoint_every * recipe.batch_size > 8_000 and checkpoint_every % 2 == 0:
        checkpoint_every //= 2
    recipe = recipe.with_overrides(checkpoint_every=checkpoint_every)
    command = f"python -m condiff compare --variants {name} --images {images} --snapshot-images {snapshot_images}"
    return train(recipe, out / name, snapshot_every=snapshot_every, progress=False, command=command)


def score_snapshots(name: str, out: Path, scores: dict, evaluator, evaluator_digest: str, save) -> None:
    """Score every snapshot of ``out/NAME`` not yet scored by this evaluator; ``save()`` after each."""
    rows = scores.setdefault("runs", {}).setdefault(name, {})
    for snapshot in sorted((out / name / "snapshots").glob("step-*")):
        info = json.loads((snapshot / "training.json").read_text())
        key = str(info["images_seen"])
        if rows.get(key, {}).get("evaluator") == evaluator_digest:
            continue
        pipe = load_pipeline(snapshot)
        row = {"step": info["steps"], "evaluator": evaluator_digest, "digest": weights_digest(snapshot)}
        for split in SPLITS:
            result = evaluate(pipe, split, guidance_scale=GUIDANCE, scheduler=SAMPLER, num_inference_steps=STEPS,
                              evaluator=evaluator)
            row[split] = round(result["accuracy"], 6)  # 6 decimals: the table rounds once, to 3
            row[f"{split}_exact_scene"] = round(result["exact_scene_accuracy"], 6)
        rows[key] = row
        save()
        print(f"{name} at {int(key):,} images: test {row['test']:.3f} / new_test {row['new_test']:.3f} "
              f"(exact-scene {row['test_exact_scene']:.3f} / {row['new_test_exact_scene']:.3f})", flush=True)


def images_per_second(name: str, steps: int = 6) -> float:
    """Training images/s of variant ``name``'s step (forward, backward, AdamW) on this CPU, after 2 warm-up steps."""
    recipe = variant(name, 1)
    torch.manual_seed(0)
    denoiser = build_denoiser(recipe.mode, **recipe.model_kwargs(), max_objects=recipe.max_objects)
    params = list(denoiser.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    bf16 = mixed_precision(recipe, on_gpu=False, verbose=False) == "bf16"
    from diffusers import DDPMScheduler  # the same noise schedule as training
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule=recipe.beta_schedule)
    x0 = torch.rand(recipe.batch_size, 3, recipe.image_size, recipe.image_size) * 2 - 1
    labels = torch.zeros(recipe.batch_size, 24)
    labels[:, :3] = 1
    generator = torch.Generator().manual_seed(0)

    def step():
        noise = torch.randn(x0.shape, generator=generator)
        t = sample_timesteps(recipe.timestep_sampling, x0.shape[0], 1000, generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = denoiser(scheduler.add_noise(x0, noise, t), t, labels)
        diffusion_loss(pred, noise, t, scheduler, recipe.snr_gamma).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * recipe.batch_size / (time.perf_counter() - start)


def compare(out: str | Path, names=tuple(VARIANTS), images: int = 128_000, snapshot_images: int = 32_000,
            speed: bool = False) -> dict:
    """Train and score ``names`` (or, with ``speed``, time their steps); returns ``scores.json``'s content."""
    for name in names:
        variant(name, images)  # every name known before any work
    if images % snapshot_images or snapshot_images % 64:
        raise ValueError(f"--images {images} must be a multiple of --snapshot-images {snapshot_images}, "
                         "itself a multiple of 64")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scores.json"
    scores = json.loads(path.read_text()) if path.is_file() else {}
    old_machine = scores.pop("hardware", NOT_RECORDED)  # files from before each variant named its own machine
    for done in scores.get("training", {}).values():
        done.setdefault("hardware", old_machine)
    scores.update(baseline=BASELINE.to_dict(), variants={n: VARIANTS[n] for n in VARIANTS},
                  settings=f"full splits, {SAMPLER.upper()}-{STEPS}, w = {GUIDANCE:g}, seed 0, "
                           "evaluator weights/evaluator")

    def save():
        atomic_write_text(path, json.dumps(scores, indent=1) + "\n")

    if speed:
        speeds = scores.setdefault("images_per_second", {})
        for name in names:
            speeds[name] = {"images_per_second": round(images_per_second(name), 1), "hardware": hardware()}
            print(f"{name}: {speeds[name]['images_per_second']} images/s", flush=True)
            save()
        return scores
    evaluator = load_evaluator()
    evaluator_digest = weights_digest(WEIGHTS_DIR / "evaluator")
    for name in names:
        done = scores.get("training", {}).get(name, {}).get("images_seen") == images
        rows = scores.get("runs", {}).get(name, {})
        if done and not (out / name).exists() and \
                all(rows.get(str(n), {}).get("evaluator") == evaluator_digest
                    for n in range(snapshot_images, images + 1, snapshot_images)):
            # Measured in full on a machine whose run folders are gone: its scores stand, nothing to redo.
            print(f"{name}: already trained and scored ({path}); skipped", flush=True)
            continue
        summary = run_variant(name, out, images, snapshot_images)
        scores.setdefault("training", {})[name] = {k: summary[k] for k in ("steps", "images_seen", "train_seconds",
                                                                          "hardware")}
        score_snapshots(name, out, scores, evaluator, evaluator_digest, save)
        save()
    return scores


def ship(out: str | Path, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Copy ``out/scores.json`` to ``weights/compare.json``: the measurements the README's table is made from."""
    source = Path(out) / "scores.json"
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist: run `python -m condiff compare --out {out}` first")
    target = weights_dir / "compare.json"
    atomic_write_text(target, source.read_text())
    return target


def table(scores: dict, at=(64_000, 128_000)) -> str:
    """The comparison as Markdown: per variant, images/s, top-k at each of ``at``, exact at the last."""
    speeds = scores.get("images_per_second", {})
    head = ["variant", "change", "images/s"] + [f"test / new_test at {n:,} images" for n in at] + \
           [f"exact-scene at {at[-1]:,}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rows in scores.get("runs", {}).items():
        change = ", ".join(f"{k}={v}" for k, v in scores["variants"].get(name, {}).items()) or "-"
        cells = [name, change, str(speeds.get(name, {}).get("images_per_second", "-"))]
        for n in at:
            row = rows.get(str(n))
            cells.append(f"{row['test']:.3f} / {row['new_test']:.3f}" if row else "-")
        row = rows.get(str(at[-1]))
        cells.append(f"{row['test_exact_scene']:.3f} / {row['new_test_exact_scene']:.3f}"
                     if row and "test_exact_scene" in row else "-")
        lines.append("| " + " | ".join(cells) + " |")
    machines = {}  # hardware -> the variants trained on it
    for name in scores.get("runs", {}):
        machines.setdefault(scores.get("training", {}).get(name, {}).get("hardware"), []).append(name)
    machines.pop(None, None)
    if machines:
        where = "; ".join(f"{', '.join(names)} on {'a machine not recorded' if machine == NOT_RECORDED else machine}"
                          for machine, names in machines.items())
        lines.append(f"\nTrained and scored: {where}. Scored on {scores.get('settings', '')}.")
    timed = {}  # hardware -> the variants whose images/s it measured (machines of one name differ 2-3x)
    for name in scores.get("runs", {}):
        if name in speeds:
            timed.setdefault(speeds[name].get("hardware", NOT_RECORDED), []).append(name)
    if timed:
        lines.append("Images/s timed idle (`--speed`): " + "; ".join(
            f"{', '.join(names)} on {'a machine not recorded' if machine == NOT_RECORDED else machine}"
            for machine, names in timed.items()) + ".")
    return "\n".join(lines)
