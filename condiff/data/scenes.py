"""A procedural i-CLEVR: small RGB scenes of 1 to 3 shaded objects, drawn a whole batch at a time.

Every object is one of 8 CLEVR colours x 3 shapes. Shapes get a simple 3-D look so that
they stay unmistakable at 32x32: a cube shows three flat faces (light top, mid front, dark
side) and sharp corners, a sphere a round shading with a highlight, a cylinder a flat oval
top on a round-shaded body. Objects never overlap.

Each (shape, colour, size) sprite is drawn once with numpy at 4x resolution and averaged down
(``sprite``); ``ProceduralScenes`` keeps them all in one tensor and draws a batch with torch, on
any device, with no Python loop over scenes:

1. Objects: every allowed combination (24 + 276 + 2,024, the held-out ones left out) is listed with
   the probability of "a uniform count, then a uniform set of that many, redrawn if held out";
   each scene picks one by inverse CDF, then its objects' order is shuffled.
2. Layout: an attempt tries up to 50 random boxes per object in turn and keeps each that overlaps
   no kept box. Each scene makes ``attempts`` attempts at once and keeps the first that placed
   every object. If all fail (under 1 scene in 10^7), objects go in random cells of a 2x2 grid.
3. Compositing: per object slot, the sprites' padded windows are read from the canvas
   (``index_select``), blended as ``rgb + image * (1 - alpha)`` (rgb premultiplied), written back.

``batch`` is the diffusion models' training stream: sets of distinct objects, as in i-CLEVR.
``draw`` renders any multiset given as object indices (duplicates allowed, e.g. three red cubes)
with the same layout and compositing; ``multisets`` draws random ones, with and without duplicates,
for the evaluator's training. ``overlap`` lets boxes share a few pixels, so that up to 5 objects fit.

A batch is a pure function of ``(seed, step, rank)`` (a ``torch.Generator`` on the device; CPU and CUDA
streams differ) and nothing in ``batch`` waits for the device. ``condiff.tools.benchmark.scenes_per_second``
measures its speed on a machine: far above what a UNet trains on, so training draws fresh scenes for every batch.
"""
from __future__ import annotations

import math
from collections.abc import Collection
from functools import cache
from itertools import combinations

import numpy as np
import torch

from .labels import COLORS, MAX_OBJECTS, NUM_LABELS, OBJECTS

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
    centres = (np.arange(n) + 0.5) / n * 2 - 1  # pixel centres in [-1, 1]
    u, v = np.meshgrid(centres, centres)  # (n, n) each
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


# ---------------------------------------------------------------------------------------------
# Batches of scenes: layout and compositing in torch
# ---------------------------------------------------------------------------------------------

SIZES_PER_OBJECT = 3  # sides base-1, base, base+1
TRIES_PER_OBJECT = 50  # boxes a layout attempt tries per object


def step_generator(device: torch.device | str, *key: int) -> torch.Generator:
    """A generator on ``device`` seeded from the integers ``key``, e.g. ``(seed, step, rank)``, well mixed."""
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))


def allowed_combinations(max_objects: int, exclude: Collection[frozenset[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Every allowed set of 1..max_objects objects as sorted indices ``(M, max_objects)`` (-1 padded),
    and its probability ``(M,)``: a uniform count, a uniform set of that many, redrawn if excluded,
    i.e. ``1 / C(24, n)`` per set of ``n``, renormalised over the allowed ones."""
    rows, weights = [], []
    for n in range(1, max_objects + 1):
        for combo in combinations(range(NUM_LABELS), n):
            if frozenset(OBJECTS[i] for i in combo) not in exclude:
                rows.append(list(combo) + [-1] * (max_objects - n))
                weights.append(1.0 / math.comb(NUM_LABELS, n))
    if not rows:
        raise ValueError("every combination of objects is excluded: nothing left to draw")
    weights = np.array(weights)
    return np.array(rows, dtype=np.int64), weights / weights.sum()


class ProceduralScenes:
    """An endless, seeded source of (image, multi-hot label) batches, rendered on ``device``.

    ``batch(step)`` always returns the same batch for the same ``(seed, step, rank)``, so a
    training run that resumes from a checkpoint sees exactly the data it would have seen.

    >>> images, labels = ProceduralScenes(seed=0).batch(step=0, batch_size=4)
    >>> images.shape, labels.shape   # (B, 3, 32, 32) in [-1, 1], (B, 24), on the source's device
    (torch.Size([4, 3, 32, 32]), torch.Size([4, 24]))
    """

    def __init__(self, size: int = 32, max_objects: int = MAX_OBJECTS, exclude: Collection[Collection[str]] = (),
                 seed: int = 0, device: torch.device | str = "cpu", attempts: int = 5, overlap: int = 0):
        self.size, self.max_objects, self.seed, self.attempts = size, max_objects, seed, attempts
        self.device = torch.device(device)
        self.exclude = {frozenset(c) for c in exclude}
        self.num_labels = NUM_LABELS
        self.base = object_base(size)
        self.largest = self.base + 1
        self.grid = math.ceil(math.sqrt(max_objects))  # the fallback layout: one object per grid cell
        if not 0 <= overlap < self.base - 1:
            raise ValueError(f"overlap={overlap}: boxes may share 0 to {self.base - 2} pixels at size {size}")
        self.overlap = overlap  # pixels two boxes may share along each axis
        if not 1 <= max_objects <= NUM_LABELS or size // self.grid < self.largest - overlap:
            raise ValueError(f"max_objects={max_objects} objects of up to {self.largest} px (sharing {overlap} px) "
                             f"do not fit a {size}x{size} image; allowed: 1 to {NUM_LABELS}, with "
                             f"{self.grid}x{self.grid} cells of at least {self.largest - overlap} px (raise overlap)")

        # Sprite bank: object i at side base-1+j is entry i * 3 + j, (rgb premultiplied, alpha), zero-padded.
        bank = np.zeros((NUM_LABELS * SIZES_PER_OBJECT, self.largest, self.largest, 4), np.float32)
        for i, name in enumerate(OBJECTS):
            color, shape = name.split()
            for j in range(SIZES_PER_OBJECT):
                side = self.base - 1 + j
                rgb, alpha = sprite(shape, color, side)
                bank[i * SIZES_PER_OBJECT + j, :side, :side] = np.concatenate([rgb, alpha], axis=-1)
        self._bank = torch.from_numpy(bank).to(self.device)  # (72, S, S, 4)
        self._background = torch.from_numpy(background(size)).to(self.device)  # (H, W, 3)
        combos, probs = allowed_combinations(max_objects, self.exclude)
        self._combos = torch.from_numpy(combos).to(self.device)  # (M, K)
        self._cdf = torch.from_numpy(np.cumsum(probs)).float().to(self.device)  # (M,)

    def layout(self, step: int, batch_size: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Objects ``(B, K)`` (label indices, -1 for an empty slot) and boxes ``(B, K, 3)`` as (top, left, side)."""
        g = step_generator(self.device, self.seed, step, rank)
        B, K, dev = batch_size, self.max_objects, self.device

        def rand(*shape):
            return torch.rand(shape, generator=g, device=dev)

        # 1. Which objects: one allowed combination per scene, its objects in random order.
        pick = torch.searchsorted(self._cdf, rand(B), right=True).clamp_(max=len(self._combos) - 1)
        objects = self._combos[pick]  # (B, K), sorted, -1 padded
        empty = objects < 0
        objects = objects.gather(1, (rand(B, K) + empty).argsort(dim=1))  # shuffle the filled slots
        return objects, self._place(objects, rand)

    def _place(self, objects: torch.Tensor, rand) -> torch.Tensor:
        """Boxes ``(B, K, 3)`` for objects ``(B, K)`` (-1 for empty), drawing numbers from ``rand(*shape)``."""
        B, K, dev, o = *objects.shape, self.device, self.overlap
        n = (objects >= 0).sum(1)  # (B,)

        # 2. Where: R attempts of up to 50 n candidate boxes; slot by slot, the next box is the first
        # candidate after the last kept one that overlaps none kept so far (by more than `overlap` px).
        R, T = self.attempts, TRIES_PER_OBJECT * K
        side = self.base - 1 + (rand(B, R, T) * SIZES_PER_OBJECT).short()  # (B, R, T), int16: less to read
        top = (rand(B, R, T) * (self.size - side + 1)).short()
        left = (rand(B, R, T) * (self.size - side + 1)).short()
        tries = torch.arange(T, device=dev)
        free = (tries < TRIES_PER_OBJECT * n[:, None, None]).expand(B, R, T)  # candidates this attempt may use
        last = torch.full((B, R), -1, device=dev)  # the candidate kept last
        placed = torch.ones(B, R, dtype=torch.bool, device=dev)  # every object so far found a box
        picks = []
        for k in range(K):  # object slots, not scenes or candidates
            usable = free & (tries > last[..., None])
            placed &= usable.any(-1) | (k >= n)[:, None]
            last = usable.byte().argmax(-1)  # (B, R): the first usable candidate (0 if none)
            kept = [c.gather(-1, last[..., None]) for c in (top, left, side)]  # (B, R, 1) each
            free = free & ((top + side - o <= kept[0]) | (kept[0] + kept[2] - o <= top)
                           | (left + side - o <= kept[1]) | (kept[1] + kept[2] - o <= left))  # no overlap
            picks.append(torch.cat(kept, dim=-1))  # (B, R, 3)
        attempt = placed.byte().argmax(-1)  # (B,): the first attempt that placed every object
        boxes = torch.stack(picks, dim=2)[torch.arange(B, device=dev), attempt].long()  # (B, K, 3)
        placed = placed.any(-1)[:, None, None]  # (B, 1, 1); false in under 1 in 10^7 scenes of 1-3 objects
        return torch.where(placed, boxes, self._fallback(boxes[..., 2], rand))

    def _fallback(self, side: torch.Tensor, rand) -> torch.Tensor:
        """Boxes ``(B, K, 3)`` that always fit: each object (sides ``(B, K)``) at a random spot of its own grid cell."""
        B, K = side.shape
        cell = self.size // self.grid
        cells = rand(B, self.grid**2).argsort(dim=1)[:, :K]  # (B, K) distinct cells
        room = (cell - side + 1).clamp(min=1)  # under 1 only with overlap: the box then spills into the next cell
        last = self.size - side  # ... but never out of the image
        return torch.stack([(cells // self.grid * cell + (rand(B, K) * room).long()).minimum(last),
                            (cells % self.grid * cell + (rand(B, K) * room).long()).minimum(last), side], dim=-1)

    def render_layout(self, objects: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Draw objects ``(B, K)`` into boxes ``(B, K, 3)``: images ``(B, 3, H, W)`` in [-1, 1]."""
        B, K = objects.shape
        S, H, dev = self.largest, self.size, objects.device
        W = H + S  # a canvas S pixels wider and taller, so that every padded S x S sprite fits inside it
        canvas = torch.zeros(W, W, 3, device=dev)
        canvas[:H, :H] = self._background
        canvas = canvas.reshape(1, W * W, 3).repeat(B, 1, 1).reshape(B * W * W, 3)  # one pixel a row
        offsets = torch.arange(S, device=dev)
        window = (offsets[:, None] * W + offsets[None, :]).flatten()  # (S*S,): a sprite's rows in a canvas
        first_row = torch.arange(B, device=dev) * (W * W)  # (B,): each scene's canvas
        for k in range(K):  # object slots, not scenes
            top, left, side = boxes[:, k].unbind(-1)  # (B,) each
            entry = objects[:, k].clamp(min=0) * SIZES_PER_OBJECT + (side - self.base + 1)  # (B,)
            texels = self._bank[entry] * (objects[:, k] >= 0)[:, None, None, None]  # (B, S, S, 4); 0 if empty
            texels = texels.reshape(B * S * S, 4)  # rgb premultiplied by alpha, alpha
            rows = ((first_row + top * W + left)[:, None] + window).flatten()  # (B*S*S,)
            under = canvas.index_select(0, rows)  # (B*S*S, 3)
            canvas.index_copy_(0, rows, texels[:, :3] + under * (1 - texels[:, 3:]))
        image = canvas.reshape(B, W, W, 3)[:, :H, :H]  # (B, H, W, 3) in [0, 1]
        return (image.permute(0, 3, 1, 2) * 2 - 1).contiguous()

    def labels(self, objects: torch.Tensor) -> torch.Tensor:
        """Objects ``(B, K)`` (-1 for empty) -> how many of each ``(B, 24)``: multi-hot when none repeats."""
        multihot = torch.zeros(objects.shape[0], NUM_LABELS, device=objects.device)
        return multihot.scatter_add_(1, objects.clamp(min=0), (objects >= 0).float())

    def batch(self, step: int, batch_size: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, 3, H, W)`` in [-1, 1] and multi-hot labels ``(B, 24)``, on the source's device."""
        objects, boxes = self.layout(step, batch_size, rank)
        return self.render_layout(objects, boxes), self.labels(objects)

    def draw(self, objects: torch.Tensor, step: int = 0, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Any multiset: objects ``(B, K)`` (label indices, -1 for an empty slot, repeats allowed, at most
        ``max_objects`` per scene) laid out as ``batch`` does -> images ``(B, 3, H, W)`` in [-1, 1] and the
        true counts ``(B, 24)``. The same ``(objects, seed, step, rank)`` give the same images."""
        objects = torch.as_tensor(objects, dtype=torch.long, device=self.device)
        if objects.ndim != 2 or not 1 <= objects.shape[1] <= self.max_objects:
            raise ValueError(f"objects must be (scenes, slots) with 1 to max_objects={self.max_objects} slots, "
                             f"got shape {tuple(objects.shape)}")
        if ((objects < -1) | (objects >= NUM_LABELS)).any():
            raise ValueError(f"object indices run from 0 to {NUM_LABELS - 1} (-1 for an empty slot)")
        g = step_generator(self.device, self.seed, step, rank)

        def rand(*shape):
            return torch.rand(shape, generator=g, device=self.device)

        return self.render_layout(objects, self._place(objects, rand)), self.labels(objects)

    def multisets(self, step: int, batch_size: int, rank: int = 0, duplicate_share: float = 0.5) -> torch.Tensor:
        """Random scenes' objects ``(B, max_objects)`` (-1 padded) for ``draw``: a uniform count 1..max_objects;
        a share ``duplicate_share`` of the scenes with 2+ objects repeat an object (a uniform pool of 1..n-1
        distinct objects, each used at least once), the others are sets of distinct objects."""
        if not 0 <= duplicate_share <= 1:
            raise ValueError(f"duplicate_share={duplicate_share}: a share from 0 to 1")
        g = step_generator(self.device, self.seed, step, rank, 1)  # not draw's stream
        B, K, dev = batch_size, self.max_objects, self.device

        def rand(*shape):
            return torch.rand(shape, generator=g, device=dev)

        n = 1 + (rand(B) * K).long()  # (B,) objects per scene
        distinct = rand(B, NUM_LABELS).argsort(dim=1)[:, :K]  # (B, K): a random set, in random order
        repeats = (rand(B) < duplicate_share) & (n > 1)
        pool = torch.where(repeats, 1 + (rand(B) * (n - 1)).long(), n)  # (B,) distinct objects used
        slot = torch.arange(K, device=dev)
        which = torch.where(slot < pool[:, None], slot, (rand(B, K) * pool[:, None]).long())  # (B, K) into the pool
        empty = slot >= n[:, None]
        objects = distinct.gather(1, which).masked_fill(empty, -1)
        return objects.gather(1, (rand(B, K) + empty).argsort(dim=1))  # the filled slots shuffled

