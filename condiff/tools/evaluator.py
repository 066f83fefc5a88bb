"""Training the evaluator: how ``weights/evaluator/`` (the judge of condiff/evaluate.py) was made.

    python -m condiff train-evaluator --out runs/evaluator

Only maintainers remake the shipped judge; readers load it with ``condiff.evaluate.load_evaluator``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.scenes import ProceduralScenes
from ..evaluate import SceneClassifier, exact_scenes, topk_mask
from ..runfolder import RunFolder
from ..runinfo import git_commit, hardware

STEPS = 6000  # how weights/evaluator was made
MAX_OBJECTS = 5  # the evaluator's scenes hold 1 to 5 objects ...
OVERLAP = 3  # ... whose boxes may share 3 px, so that 5 fit at 32x32
DUPLICATE_SHARE = 0.5  # of the scenes with 2+ objects repeat one


def evaluator_scenes(seed: int) -> ProceduralScenes:
    """The renderer the evaluator learns from and is checked on: any multiset of 1 to 5 objects."""
    return ProceduralScenes(max_objects=MAX_OBJECTS, overlap=OVERLAP, seed=seed)


def train_evaluator(output_dir: str | Path, steps: int = STEPS, batch_size: int = 64, lr: float = 2e-3,
                    seed: int = 0, progress: bool = True, command: str | None = None,
                    overwrite_shipped: bool = False) -> dict:
    """Train the classifier on fresh scenes (``evaluator_scenes``: every combination, new_test's too,
    duplicates, 1 to 5 objects) and save it: presence by binary cross-entropy, counts by cross-entropy.

    The folder is guarded as a training run's (``RunFolder``: shipped weights refused unless
    ``overwrite_shipped``, one run at a time). ``command`` (the CLI's call) goes into ``training.json``."""
    commit = git_commit()  # the code this run starts with
    with RunFolder(output_dir, overwrite_shipped) as folder:
        torch.manual_seed(seed)
        model = SceneClassifier()
        data = evaluator_scenes(seed)  # no exclusions: the judge must know every combination
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
        start = time.perf_counter()
        for step in tqdm(range(steps), desc="evaluator", disable=not progress, mininterval=10):
            images, counts = data.draw(data.multisets(step, batch_size, duplicate_share=DUPLICATE_SHARE), step)
            g = torch.Generator().manual_seed(seed + step)
            # Light noise so that slightly imperfect samples are still judged by their content.
            noise = torch.rand(batch_size, 1, 1, 1, generator=g) * 0.1 * torch.randn(images.shape, generator=g)
            presence, count_logits = model.heads(images + noise)
            target = counts.long().clamp(max=model.config.max_count)  # (B, 24): 0, 1, 2, 3 or more
            loss = (F.binary_cross_entropy_with_logits(presence, (counts > 0).float())
                    + F.cross_entropy(count_logits.flatten(0, 1), target.flatten()))
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        seconds = time.perf_counter() - start
        model.eval()
        summary = {"steps": steps, "batch_size": batch_size, "train_seconds": round(seconds, 1),
                   "accuracy_on_fresh_scenes": real_scene_accuracy(model, seed=seed + 1),
                   "scene_agreement": {kind: scene_agreement(model, duplicates=kind == "duplicates", seed=seed + 1)
                                       for kind in ("plain", "duplicates")},
                   "parameters": sum(p.numel() for p in model.parameters()), "seed": seed,
                   "hardware": hardware(), "commit": commit, **({"command": command} if command else {})}
        model.save_pretrained(folder.path)
        folder.write_text("training.json", json.dumps(summary, indent=1) + "\n")
    return summary


@torch.no_grad()
def real_scene_accuracy(model: SceneClassifier, n: int = 2048, seed: int = 1) -> float:
    """The classifier's top-k accuracy on ``n`` fresh rendered scenes (a ceiling for samples)."""
    data = ProceduralScenes(seed=10_000 + seed)
    hits = total = 0
    for step in range(n // 256):
        images, labels = data.batch(step, 256)
        hits += int((topk_mask(model(images), labels) * labels).sum())  # i-CLEVR's top-k hits
        total += int(labels.sum())
    return hits / total


@torch.no_grad()
def scene_agreement(model: SceneClassifier, n: int = 2048, seed: int = 1, duplicates: bool = True) -> float:
    """Share of ``n`` fresh rendered scenes whose counts the classifier gets exactly right (every object, how
    many): 1 to 5 objects, each scene with a repeated object (``duplicates``) or none."""
    data = evaluator_scenes(20_000 + seed)
    right = total = 0
    for step in range(max(1, n // 256)):
        objects = data.multisets(step, min(n, 256), duplicate_share=1.0 if duplicates else 0.0)
        if duplicates:  # a scene of one object cannot repeat it: scenes of 2 to 5 objects
            objects = objects[(objects >= 0).sum(1) > 1]
        images, counts = data.draw(objects, step)
        found = model.heads(images)[1].argmax(-1)  # (b, 24)
        right += int(exact_scenes(found, counts.long().clamp(max=model.config.max_count)).sum())
        total += len(objects)
    return right / total
