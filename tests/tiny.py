"""Tiny stand-ins for tests: a recipe that trains in seconds and sprites files in the real format.

``TINY`` (16x16 scenes, a 47k-parameter UNet, 4 steps, a checkpoint every 2 steps) is not in
``condiff.recipes.RECIPES``: tests pass it to ``train`` directly. Run as a script, this file is
``python -m condiff`` with the recipe registered, for tests that train in a subprocess:

    python tests/tiny.py train tiny --out OUT
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from condiff.data.sprites import IMAGES_FILE, LABELS_FILE, SIZE, SPRITE_CLASSES
from condiff.recipes import RECIPES, Recipe

TINY = Recipe("tiny", "time_sum", "Tiny test model", image_size=16, block_out_channels=(8, 16), batch_size=8,
              warmup_steps=2, max_steps=4, checkpoint_every=2)


def write_sprites_fixture(root: str | Path, n: int = 16, seed: int = 0) -> Path:
    """Write ``n`` random sprites in the real files' format into ``root``; returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)  # (n, 16, 16, 3)
    classes = rng.integers(0, len(SPRITE_CLASSES), size=n)
    labels = np.eye(len(SPRITE_CLASSES), dtype=np.float64)[classes]  # (n, 5) one-hot
    np.save(root / IMAGES_FILE, images)
    np.save(root / LABELS_FILE, labels)
    return root


if __name__ == "__main__":
    from condiff.__main__ import main

    RECIPES[TINY.name] = TINY  # this process only: the CLI's `train` now accepts "tiny"
    main()
