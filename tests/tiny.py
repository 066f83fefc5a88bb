"""Tiny stand-ins for tests: a recipe that trains in seconds, data files in the real formats, chosen scenes.

``TINY`` (``Recipe.tiny()`` of time_sum: 16x16 scenes, a 47k-parameter UNet, 4 steps) is not in
``condiff.recipes.RECIPES``: tests pass it to ``train`` directly. Run as a script, this file is
``python -m condiff`` with the recipe registered, for tests that train in a subprocess:

    python tests/tiny.py train tiny --out OUT
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from condiff.data.iclevr import held_out_combinations, load_split
from condiff.data.labels import OBJECT_TO_INDEX, OBJECTS
from condiff.data.scenes import ProceduralScenes
from condiff.recipes import RECIPES

TINY = replace(RECIPES["time_sum"].tiny(), name="tiny", title="Tiny test model")


def write_sprites_fixture(root: str | Path, n: int = 16, seed: int = 0) -> Path:
    """Write ``n`` random sprites in the DLAI files' format (the README's example) into ``root``; returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)  # (n, 16, 16, 3)
    labels = np.eye(5, dtype=np.float64)[rng.integers(0, 5, size=n)]  # (n, 5) one-hot, 5 classes
    np.save(root / "sprites_1788_16x16.npy", images)
    np.save(root / "sprite_labels_nc_1788_16x16.npy", labels)
    return root


def write_iclevr_folder(root: str | Path, num_train: int = 1000, size: int = 32, seed: int = 0) -> Path:
    """Render ``num_train`` training scenes into i-CLEVR's folder layout, with the committed splits."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, labels = ProceduralScenes(size, exclude=held_out_combinations(), seed=seed).batch(0, num_train)
    pixels = ((images + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()  # (N, H, W, 3) uint8
    train = {}
    for i, (image, label) in enumerate(zip(pixels, labels)):
        name = f"CLEVR_train_{i:06d}_0.png"
        Image.fromarray(image).save(root / "images" / name)
        train[name] = [OBJECTS[i] for i in label.nonzero().flatten().tolist()]
    (root / "objects.json").write_text(json.dumps(OBJECT_TO_INDEX, indent=1))
    (root / "train.json").write_text(json.dumps(train, indent=1))
    for split in ("test", "new_test"):
        (root / f"{split}.json").write_text(json.dumps(load_split(split)))
    return root


def render_cases(cases: list[list[str]], size: int = 32, seed: int = 0) -> torch.Tensor:
    """Scenes of exactly these objects (one list of names each), placed by the renderer's own layouts.

    Returns ``(B, 3, size, size)`` in [-1, 1]. A layout's filled slots come first, so each case takes the
    boxes of a different drawn scene with as many objects.
    """
    scenes = ProceduralScenes(size, seed=seed)
    objects, boxes = scenes.layout(0, 64 * len(cases))  # (N, 3), (N, 3, 3)
    counts = (objects >= 0).sum(1).tolist()
    rows = {n: [i for i, k in enumerate(counts) if k == n] for n in set(counts)}
    chosen = torch.full((len(cases), scenes.max_objects), -1)
    for row, case in zip(chosen, cases):
        row[: len(case)] = torch.tensor([OBJECT_TO_INDEX[name] for name in case])
    return scenes.render_layout(chosen, boxes[[rows[len(case)].pop() for case in cases]])


if __name__ == "__main__":
    from condiff.__main__ import main

    RECIPES[TINY.name] = TINY  # this process only: the CLI's `train` now accepts "tiny"
    main()


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (not even ``except Exception``)."""


def dying_replace(kill_at: int, calls: list):
    """An ``os.replace`` that dies (``Killed``) at its ``kill_at``-th call; each call's target goes into ``calls``."""
    replace = os.replace

    def replace_or_die(source, target):
        calls.append(target)
        if len(calls) == kill_at:
            raise Killed
        return replace(source, target)

    return replace_or_die
