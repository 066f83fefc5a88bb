"""The DeepLearning.AI "sprites": 16x16 pixel-art characters with one of 5 class labels.

Two numpy files, which readers download themselves (for example from the DeepLearning.AI
short course "How Diffusion Models Work"); condiff neither ships nor downloads them:

- ``sprites_1788_16x16.npy``: uint8 images, shape (N, 16, 16, 3), values 0..255;
- ``sprite_labels_nc_1788_16x16.npy``: float one-hot labels, shape (N, 5), in the order
  of ``SPRITE_CLASSES``.

``SpritesData`` serves them with the same ``batch(step, batch_size, rank)`` interface as
``ProceduralScenes``, so the training code runs on either.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SPRITE_CLASSES = ("hero", "non-hero", "food", "spell", "side-facing")
IMAGES_FILE = "sprites_1788_16x16.npy"
LABELS_FILE = "sprite_labels_nc_1788_16x16.npy"
SIZE = 16


def _missing_files_error(root: Path, missing: list[Path]) -> FileNotFoundError:
    return FileNotFoundError(
        f"sprites file(s) not found: {', '.join(str(p) for p in missing)}. "
        f"The sprites loader expects two files in {root}: {IMAGES_FILE} (uint8 images, shape "
        f"(N, {SIZE}, {SIZE}, 3)) and {LABELS_FILE} (one-hot labels, shape "
        f"(N, {len(SPRITE_CLASSES)})). condiff does not ship or download them: download them "
        f"yourself (e.g. from the DeepLearning.AI course \"How Diffusion Models Work\") and pass "
        f"the folder that holds them."
    )


def load_sprites(root: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Load and check the two files in ``root`` -> images (N, 3, 16, 16) in [-1, 1], labels (N, 5)."""
    root = Path(root)
    images_path, labels_path = root / IMAGES_FILE, root / LABELS_FILE
    missing = [p for p in (images_path, labels_path) if not p.is_file()]
    if missing:
        raise _missing_files_error(root, missing)
    images = np.load(images_path, allow_pickle=False)  # (N, 16, 16, 3) uint8
    labels = np.load(labels_path, allow_pickle=False)  # (N, 5) float

    expected_images = f"(N, {SIZE}, {SIZE}, 3)"
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(
            f"{images_path} holds an array of shape {images.shape}, expected {expected_images}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"{images_path} holds dtype {images.dtype}, expected uint8 (values 0..255)")
    k = len(SPRITE_CLASSES)
    if labels.ndim != 2 or labels.shape[1] != k:
        raise ValueError(f"{labels_path} holds an array of shape {labels.shape}, expected (N, {k})")
    if not np.issubdtype(labels.dtype, np.floating):
        raise ValueError(f"{labels_path} holds dtype {labels.dtype}, expected a float one-hot array")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"{labels_path} must hold one-hot rows of 0s and 1s")
    if len(images) != len(labels):
        raise ValueError(
            f"{len(images)} images but {len(labels)} labels: {images_path} has shape {images.shape}, "
            f"{labels_path} has shape {labels.shape}, expected (N, {SIZE}, {SIZE}, 3) and (N, {k}) "
            f"with the same N"
        )

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (N, 3, 16, 16) in [-1, 1]
    y = torch.from_numpy(labels).float()  # (N, 5)
    return x, y


class SpritesData:
    """Seeded random batches of sprites, with the interface of ``ProceduralScenes``.

    ``batch(step)`` always returns the same batch for the same ``(seed, step, rank)``.

    >>> images, labels = SpritesData(root).batch(step=0, batch_size=4)  # doctest: +SKIP
    >>> images.shape, labels.shape   # (B, 3, 16, 16) in [-1, 1], (B, 5)
    """

    size = SIZE
    num_labels = len(SPRITE_CLASSES)
    label_names = SPRITE_CLASSES
    max_objects = 1  # one sprite, one class per image

    def __init__(self, root: str | Path, seed: int = 0):
        self.root, self.seed = Path(root), seed
        self.images, self.labels = load_sprites(self.root)  # (N, 3, 16, 16), (N, 5)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, step: int, batch_size: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, rank])
        index = torch.from_numpy(rng.integers(0, len(self.images), size=batch_size))  # (B,)
        return self.images[index], self.labels[index]
