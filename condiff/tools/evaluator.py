"""Training the evaluator: how ``weights/evaluator/`` (the judge of condiff/evaluate.py) was made.

    python -m condiff train-evaluator --out runs/evaluator     # about 600 steps on a CPU

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
from ..evaluate import SceneClassifier, topk_mask
from ..runfolder import RunFolder
from ..runinfo import git_commit, hardware

STEPS = 600  # how weights/evaluator was made


def train_evaluator(output_dir: str | Path, steps: int = STEPS, batch_size: int = 64, lr: float = 2e-3,
                    seed: int = 0, progress: bool = True, command: str | None = None,
                    overwrite_shipped: bool = False) -> dict:
    """Train the classifier on fresh scenes (all combinations, new_test's too) and save it.

    The folder is guarded as a training run's (``RunFolder``: shipped weights refused unless
    ``overwrite_shipped``, one run at a time). ``command`` (the CLI's call) goes into ``training.json``."""
    commit = git_commit()  # the code this run starts with
    with RunFolder(output_dir, overwrite_shipped) as folder:
        torch.manual_seed(seed)
        model = SceneClassifier()
        data = ProceduralScenes(seed=seed)  # no exclusions: the judge must know every combination
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
        start = time.perf_counter()
        for step in tqdm(range(steps), desc="evaluator", disable=not progress, mininterval=10):
            images, labels = data.batch(step, batch_size)
            g = torch.Generator().manual_seed(seed + step)
            # Light noise so that slightly imperfect samples are still judged by their content.
            noise = torch.rand(batch_size, 1, 1, 1, generator=g) * 0.1 * torch.randn(images.shape, generator=g)
            loss = F.binary_cross_entropy_with_logits(model(images + noise), labels)
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        seconds = time.perf_counter() - start
        model.eval()
        summary = {"steps": steps, "batch_size": batch_size, "train_seconds": round(seconds, 1),
                   "accuracy_on_fresh_scenes": real_scene_accuracy(model, seed=seed + 1), "seed": seed,
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
