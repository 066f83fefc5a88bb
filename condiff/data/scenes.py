"""A procedural i-CLEVR: small RGB scenes of 1 to 3 shaded objects, drawn with numpy.

Every object is one of 8 CLEVR colours x 3 shapes. Shapes get a simple 3-D look so that
they stay unmistakable at 32x32: a cube shows three flat faces (light top, mid front, dark
side) and sharp corners, a sphere a round shading with a highlight, a cylinder a flat oval
top on a round-shaded body. Objects never overlap.

Each (shape, colour, size) sprite is drawn once at 4x resolution, averaged down and cached,
so a scene is a layout and two or three alpha pastes: about 2,800 scenes/s at 32x32 on one
thread of a 2-core x86 CPU (``python -m condiff.data.scenes`` measures it), 50 times what the
32x32 UNet trains on, so training draws fresh scenes for every batch.
"""
from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from functools import cache

import numpy as np
import torch

from .labels import COLORS, MAX_OBJECTS, NUM_LABELS, OBJECT_TO_INDEX, OBJECTS

# CLEVR's palette, RGB 0-255, in the order of ``labels.COLORS``.
PALETTE = np.array(
    [
        [87, 87, 87],  # gray
        [173, 35, 35],  # red
        [42, 75, 215],  # blue
        [29, 105, 20],  # green
        [129, 74, 25],  # brown
        [129, 38, 192],  # purple
        [41, 208, 208],  # cyan
        [255, 238, 51],  # yellow
    ],
    dtype=np.float32,
) / 255.0
LIGHT = np.array([-0.55, 0.6, 0.58]) / np.linalg.norm([-0.55, 0.6, 0.58])  # from upper left, front
SUPERSAMPLE = 4
OBJECT_FRACTION = 0.36  # sprite box side / image side: 12 px at 32x32


# ---------------------------------------------------------------------------------------------
# Sprites: one object in a square box, as (shade, alpha). shade is brightness 0..1.3.
# u runs left -> right and v top -> bottom, both in [-1, 1].
# ---------------------------------------------------------------------------------------------

def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(n) + 0.5) / n * 2 - 1
    return np.meshgrid(c, c)  # u, v: (n, n)


def _sphere(u, v):
    r2 = u**2 + v**2
    alpha = (r2 <= 0.92**2).astype(np.float32)
    nx, ny = u / 0.92, -v / 0.92
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
    diffuse = np.clip(nx * LIGHT[0] + ny * LIGHT[1] + nz * LIGHT[2], 0, 1)
    highlight = np.clip((nx - LIGHT[0] * 0.5) ** 2 + (ny - LIGHT[1] * 0.5) ** 2, 0, 1)
    shade = 0.3 + 0.8 * diffuse + 0.45 * np.exp(-highlight / 0.02)
    return shade, alpha


def _cube(u, v):
    # Oblique view: a front square plus a top and a right parallelogram, shifted up-right.
    a, b, s, dx, dy = -0.85, -0.4, 1.2, 0.5, -0.5
    shade = np.zeros_like(u)
    alpha = np.zeros_like(u)
    front = (u >= a) & (u <= a + s) & (v >= b) & (v <= b + s)
    w = (v - b) / dy  # top face: (a, b) + t (s, 0) + w (dx, dy)
    t = (u - a - w * dx) / s
    top = (w >= 0) & (w <= 1) & (t >= 0) & (t <= 1)
    w2 = (u - a - s) / dx  # right face: (a + s, b) + w (dx, dy) + t (0, s)
    t2 = (v - b - w2 * dy) / s
    side = (w2 >= 0) & (w2 <= 1) & (t2 >= 0) & (t2 <= 1)
    shade[front], shade[top], shade[side] = 0.78, 1.18, 0.48
    alpha[front | top | side] = 1.0
    edge = 0.07  # darken the three visible edges that meet at the near top corner
    near_edges = (front & (v - b < edge)) | (front & (a + s - u < edge)) | (top & ((1 - t) * s < edge))
    shade[near_edges] *= 0.8
    return shade, alpha


def _cylinder(u, v):
    rx, ry, top_c, bottom_c = 0.7, 0.28, -0.55, 0.6
    in_top = ((u / rx) ** 2 + ((v - top_c) / ry) ** 2) <= 1
    in_bottom = ((u / rx) ** 2 + ((v - bottom_c) / ry) ** 2) <= 1
    body = ((np.abs(u) <= rx) & (v >= top_c) & (v <= bottom_c)) | in_bottom
    nx = np.clip(u / rx, -1, 1)
    nz = np.sqrt(1 - nx**2)
    body_shade = 0.32 + 0.85 * np.clip(nx * LIGHT[0] + nz * LIGHT[2], 0, 1)
    shade = np.where(in_top, 1.15, np.where(body, body_shade, 0.0))
    alpha = (in_top | body).astype(np.float32)
    return shade, alpha


_DRAW = {"cube": _cube, "sphere": _sphere, "cylinder": _cylinder}


@cache
def sprite(shape: str, color: str, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB premultiplied by alpha ``(size_px, size_px, 3)`` and alpha ``(size_px, size_px, 1)``."""
    n = size_px * SUPERSAMPLE
    u, v = _grid(n)
    shade, alpha = _DRAW[shape](u, v)
    rgb = PALETTE[COLORS.index(color)] * shade[..., None]
    rgb = rgb + np.clip(shade[..., None] - 1.0, 0, None) * 0.6  # bright faces whiten a little
    rgb = np.clip(rgb, 0, 1) * alpha[..., None]

    def down(x):  # average SUPERSAMPLE x SUPERSAMPLE blocks: anti-aliasing
        return x.reshape(size_px, SUPERSAMPLE, size_px, SUPERSAMPLE, -1).mean(axis=(1, 3))

    return down(rgb).astype(np.float32), down(alpha[..., None]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------------------------

@cache
def background(size: int) -> np.ndarray:
    """A light-grey floor, a little darker towards the viewer: ``(size, size, 3)``."""
    ramp = np.linspace(0.80, 0.66, size, dtype=np.float32)[:, None, None]
    return np.broadcast_to(ramp, (size, size, 3)).copy()


def object_base(size: int) -> int:
    """The middle sprite side at this image size; objects are drawn base-1, base or base+1 pixels wide."""
    return max(4, round(size * OBJECT_FRACTION))


def render_scene(objects: Sequence[str], rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Draw one scene: object names -> float32 RGB image ``(size, size, 3)`` in [0, 1].

    Positions and sizes are drawn from ``rng``; the objects' sprite boxes never overlap.
    """
    return render_boxes(objects, _layout(len(objects), object_base(size), size, rng), size)


def render_boxes(objects: Sequence[str], boxes: Sequence[tuple[int, int, int]], size: int = 32) -> np.ndarray:
    """Paste each named object into its box ``(top, left, side)``: float32 RGB ``(size, size, 3)`` in [0, 1]."""
    image = background(size).copy()
    for name, (y, x, s) in zip(objects, boxes):
        color, shape = name.split()
        rgb, alpha = sprite(shape, color, s)
        image[y : y + s, x : x + s] = rgb + image[y : y + s, x : x + s] * (1 - alpha)
    return image


def _layout(n: int, base: int, size: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """``n`` non-overlapping square boxes ``(top, left, side)``, sides base-1..base+1."""
    for _ in range(100):  # a bad first box can leave no room: then start the layout again
        boxes: list[tuple[int, int, int]] = []
        for _ in range(50 * n):
            s = base + int(rng.integers(-1, 2))
            y, x = (int(c) for c in rng.integers(0, size - s + 1, size=2))
            if all(x + s <= bx or bx + bs <= x or y + s <= by or by + bs <= y for by, bx, bs in boxes):
                boxes.append((y, x, s))
                if len(boxes) == n:
                    return boxes
    raise RuntimeError(f"could not place {n} objects on a {size}x{size} image")


def random_objects(
    rng: np.random.Generator,
    max_objects: int = MAX_OBJECTS,
    exclude: Collection[frozenset[str]] = (),
) -> list[str]:
    """1..max_objects distinct object names, never one of the ``exclude``d combinations."""
    while True:
        n = int(rng.integers(1, max_objects + 1))
        names = [OBJECTS[i] for i in rng.choice(NUM_LABELS, size=n, replace=False)]
        if frozenset(names) not in exclude:
            return names


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(B, H, W, 3)`` floats in [0, 1] -> ``(B, 3, H, W)`` in [-1, 1], the models' range."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))) * 2 - 1


class ProceduralScenes:
    """An endless, seeded source of (image, multi-hot label) batches.

    ``batch(step)`` always returns the same batch for the same ``(seed, step, rank)``, so a
    training run that resumes from a checkpoint sees exactly the data it would have seen.

    >>> images, labels = ProceduralScenes(seed=0).batch(step=0, batch_size=4)
    >>> images.shape, labels.shape   # (B, 3, 32, 32) in [-1, 1], (B, 24)
    (torch.Size([4, 3, 32, 32]), torch.Size([4, 24]))
    """

    def __init__(
        self,
        size: int = 32,
        max_objects: int = MAX_OBJECTS,
        exclude: Collection[Collection[str]] = (),
        seed: int = 0,
    ):
        self.size, self.max_objects, self.seed = size, max_objects, seed
        self.exclude = {frozenset(c) for c in exclude}
        self.num_labels = NUM_LABELS

    def batch(self, step: int, batch_size: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, rank])
        scenes = [random_objects(rng, self.max_objects, self.exclude) for _ in range(batch_size)]
        images = np.stack([render_scene(s, rng, self.size) for s in scenes])
        labels = torch.zeros(batch_size, NUM_LABELS)
        for i, scene in enumerate(scenes):
            labels[i, [OBJECT_TO_INDEX[n] for n in scene]] = 1.0
        return to_tensor(images), labels


def scenes_per_second(size: int = 32, n: int = 2000) -> float:
    """Measure the renderer: full batches (objects, images, labels) per second."""
    source = ProceduralScenes(size=size)
    source.batch(0, 64)  # fill the sprite cache
    start = time.perf_counter()
    for step in range(n // 64):
        source.batch(step, 64)
    return (n // 64) * 64 / (time.perf_counter() - start)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for size in (32, 64):
        print(f"{size}x{size}: {scenes_per_second(size):,.0f} scenes/s")
