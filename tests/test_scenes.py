"""The scene renderer: a plain numpy paste gives the same pixels, and scenes follow the promised distribution.

The references below are the renderer's definition written one scene at a time in numpy: ``paste`` draws
the sprites of a layout one after another, ``reference_layout`` draws boxes one by one and starts again
when stuck. The statistics compare 16,000 scenes (fixed seeds, so the tests are deterministic) with exact
expectations or with the reference; the tolerances are about four standard errors, and each one fails a
renderer that gets that part of the distribution wrong (uniform counts instead of rejection-adjusted ones,
layouts that skip the restarts, objects placed in label order, a missing object, a shifted sprite).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from condiff.data import scenes
from condiff.data.iclevr import held_out_combinations
from condiff.data.labels import NUM_LABELS, OBJECT_TO_INDEX, OBJECTS
from condiff.data.scenes import ProceduralScenes, background, object_base, sprite

N = 16_000
HELD_OUT = held_out_combinations()


def paste(objects: list[int], boxes: list[tuple], size: int) -> np.ndarray:
    """The reference compositing: each object's sprite pasted into its box ``(top, left, side)``, in turn."""
    image = background(size).copy()  # (H, W, 3) in [0, 1]
    for i, (y, x, s) in zip(objects, boxes):
        color, shape = OBJECTS[i].split()
        rgb, alpha = sprite(shape, color, s)  # premultiplied (s, s, 3), (s, s, 1)
        image[y : y + s, x : x + s] = rgb + image[y : y + s, x : x + s] * (1 - alpha)
    return image


def reference_layout(n: int, size: int, rng: np.random.Generator) -> list[tuple]:
    """The reference layout: up to 50 n random boxes, each kept if it overlaps none kept; start again if stuck."""
    base = object_base(size)
    while True:
        boxes = []
        for _ in range(scenes.TRIES_PER_OBJECT * n):
            s = base + int(rng.integers(-1, 2))
            y, x = (int(c) for c in rng.integers(0, size - s + 1, size=2))
            if not overlapping([*boxes, (y, x, s)]):
                boxes.append((y, x, s))
                if len(boxes) == n:
                    return boxes


def as_lists(objects: torch.Tensor, boxes: torch.Tensor) -> tuple[list[list[int]], list[list[tuple]]]:
    """Layouts -> per scene, its object indices and their boxes (empty slots dropped)."""
    objs, out_boxes = [], []
    for row, row_boxes in zip(objects.tolist(), boxes.tolist()):
        objs.append([i for i in row if i >= 0])
        out_boxes.append([tuple(b) for b, i in zip(row_boxes, row) if i >= 0])
    return objs, out_boxes


def overlapping(boxes: list[tuple]) -> bool:
    return any(not (y1 + s1 <= y2 or y2 + s2 <= y1 or x1 + s1 <= x2 or x2 + s2 <= x1)
               for i, (y1, x1, s1) in enumerate(boxes) for (y2, x2, s2) in boxes[i + 1:])


@pytest.mark.parametrize("size", [16, 32])
def test_same_layout_same_pixels(size):
    """For the renderer's layouts, the numpy paste gives the same image, bit for bit on the CPU."""
    source = ProceduralScenes(size=size, exclude=HELD_OUT, seed=3)
    objects, boxes = source.layout(step=0, batch_size=300)
    images = source.render_layout(objects, boxes)  # (B, 3, H, W) in [-1, 1]
    reference = np.stack([paste(o, b, size) for o, b in zip(*as_lists(objects, boxes))])  # (B, H, W, 3)
    reference = torch.from_numpy(reference).permute(0, 3, 1, 2) * 2 - 1
    assert images.shape == reference.shape == (300, 3, size, size)
    torch.testing.assert_close(images, reference, rtol=0, atol=1e-6)
    assert (images != source.render_layout(objects[:, :0], boxes[:, :0])).any()  # objects were drawn


@pytest.mark.parametrize("size", [16, 32, 64])
def test_every_object_is_drawn_and_objects_do_not_overlap(size):
    source = ProceduralScenes(size=size, seed=0)
    objects, boxes = source.layout(0, 200)
    boxes = boxes[(objects >= 0).sum(1) == 3][:50]  # (50, 3, 3): layouts of three objects
    chosen = torch.tensor([[OBJECT_TO_INDEX[n] for n in ("red cube", "blue sphere", "yellow cylinder")]] * 50)
    images = (source.render_layout(chosen, boxes) + 1) / 2  # (50, 3, H, W) in [0, 1]
    floor = torch.from_numpy(background(size)).permute(2, 0, 1)
    changed = (images - floor).abs().sum(1) > 0.05  # (50, H, W): pixels covered by objects
    # Three objects of about (0.36 * size)^2 pixels each, none hiding another.
    assert (changed.sum((1, 2)) > 3 * 0.3 * (0.36 * size) ** 2).all()


def test_batches_are_seeded_by_seed_step_and_rank():
    a_images, a_labels = ProceduralScenes(seed=3).batch(step=5, batch_size=8, rank=1)
    b_images, b_labels = ProceduralScenes(seed=3).batch(step=5, batch_size=8, rank=1)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    for other in (ProceduralScenes(seed=3).batch(6, 8, 1), ProceduralScenes(seed=3).batch(5, 8, 0),
                  ProceduralScenes(seed=4).batch(5, 8, 1)):
        assert not torch.equal(a_images, other[0])
    assert a_images.shape == (8, 3, 32, 32) and a_images.dtype == torch.float32 and a_images.is_contiguous()
    assert a_images.min() >= -1 and a_images.max() <= 1
    assert a_labels.shape == (8, NUM_LABELS) and set(a_labels.sum(1).tolist()) <= {1.0, 2.0, 3.0}
    assert set(a_labels.unique().tolist()) <= {0.0, 1.0}
    objects, boxes = ProceduralScenes(seed=3).layout(5, 8, 1)  # a batch is its layout, drawn and labelled
    assert torch.equal(a_images, ProceduralScenes(seed=3).render_layout(objects, boxes))


def test_labels_are_the_objects_drawn():
    source = ProceduralScenes(exclude=HELD_OUT, seed=0)
    objects, _ = source.layout(0, 64)
    labels = source.labels(objects)
    for row, objs in zip(labels, objects.tolist()):
        assert sorted(row.nonzero().flatten().tolist()) == sorted(i for i in objs if i >= 0)


def expected_objects(held_out) -> tuple[np.ndarray, np.ndarray]:
    """Exact P(count = 1, 2, 3) and P(label in scene) for "a uniform count, a uniform set, redrawn if held out"."""
    sets = np.array([math.comb(NUM_LABELS, n) for n in (1, 2, 3)])
    held = np.array([sum(len(c) == n for c in held_out) for n in (1, 2, 3)])
    count = (1 - held / sets) / (1 - held / sets).sum()
    label = np.zeros(NUM_LABELS)
    for i, name in enumerate(OBJECTS):
        for n, p in zip((1, 2, 3), count):  # allowed sets of n holding the label / allowed sets of n
            with_label = math.comb(NUM_LABELS - 1, n - 1) - sum(len(c) == n and name in c for c in held_out)
            label[i] += p * with_label / (sets[n - 1] - held[n - 1])
    return count, label


def statistics(objs, boxes) -> dict[str, np.ndarray]:
    counts = np.array([len(o) for o in objs])
    multihot = np.zeros((len(objs), NUM_LABELS))
    for row, o in zip(multihot, objs):
        row[o] = 1
    sides = np.array([s for bs in boxes for (_, _, s) in bs])

    def distance_from_centre(slot, n):  # mean over scenes of n objects: where slot's box lies
        return np.mean([np.hypot(y + s / 2 - 16, x + s / 2 - 16) for bs in boxes if len(bs) == n
                        for (y, x, s) in [bs[slot]]])

    def distance_of_lowest_label(n):  # the same for the object with the lowest label: is the order random?
        return np.mean([np.hypot(y + s / 2 - 16, x + s / 2 - 16) for o, bs in zip(objs, boxes) if len(bs) == n
                        for (y, x, s) in [bs[int(np.argmin(o))]]])

    return {
        "count": np.array([(counts == k).mean() for k in (1, 2, 3)]),
        "label": multihot.mean(0),
        "side": np.array([(sides == s).mean() for s in (11, 12, 13)]),
        "distance": np.array([distance_from_centre(0, 2), distance_from_centre(1, 2),
                              distance_from_centre(0, 3), distance_from_centre(1, 3), distance_from_centre(2, 3),
                              distance_of_lowest_label(2), distance_of_lowest_label(3)]),
    }


def test_large_batch_statistics_match_the_definition(monkeypatch):
    # The fallback layout is for one scene in 10^7: mark its boxes, so that any use of it fails below.
    monkeypatch.setattr(ProceduralScenes, "_fallback", lambda self, side, rand: torch.full((*side.shape, 3), -99))
    source = ProceduralScenes(exclude=HELD_OUT, seed=1)
    parts = [source.layout(step, 2000) for step in range(N // 2000)]
    objs, boxes = as_lists(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    # Never a held-out combination, never two boxes that overlap, every box inside the image.
    assert not {frozenset(OBJECTS[i] for i in o) for o in objs} & HELD_OUT
    assert all(len(set(o)) == len(o) for o in objs)
    assert not any(overlapping(bs) for bs in boxes)
    assert all(0 <= y and 0 <= x and y + s <= 32 and x + s <= 32 for bs in boxes for (y, x, s) in bs)

    ours = statistics(objs, boxes)
    # Object counts: rejecting held-out sets makes 2 objects rarer than 1 or 3.
    count, label = expected_objects(HELD_OUT)
    assert count[1] < count[0] and count[1] < count[2]
    np.testing.assert_allclose(ours["count"], count, atol=0.012)
    np.testing.assert_allclose(ours["label"], label, atol=0.012)  # each ~0.083
    # Boxes: the reference layouts for the same objects, each scene's objects in random order.
    rng = np.random.default_rng(1)
    theirs = statistics([list(rng.permutation(o)) for o in objs], [reference_layout(len(o), 32, rng) for o in objs])
    np.testing.assert_allclose(ours["side"], theirs["side"], atol=0.015)  # small boxes fit more often
    # Where boxes land (px from the centre, per slot): later boxes are pushed out by earlier ones.
    np.testing.assert_allclose(ours["distance"], theirs["distance"], atol=0.25)
    assert ours["distance"][2] + 1 < ours["distance"][4]  # the statistic can tell slots apart


def test_fallback_layout_fits_without_overlap(monkeypatch):
    """With one try per object most attempts fail, so the grid fallback places the objects."""
    monkeypatch.setattr(scenes, "TRIES_PER_OBJECT", 1)
    source = ProceduralScenes(exclude=HELD_OUT, seed=0, attempts=1)
    objects, boxes = source.layout(0, 2000)
    objs, bs = as_lists(objects, boxes)
    assert not any(overlapping(b) for b in bs)
    assert all(0 <= y and 0 <= x and y + s <= 32 and x + s <= 32 for b in bs for (y, x, s) in b)
    assert {s for b in bs for (_, _, s) in b} == {11, 12, 13}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        ProceduralScenes(size=16, max_objects=9)
    with pytest.raises(ValueError, match="do not fit a 8x8 image"):
        ProceduralScenes(size=8)
    with pytest.raises(ValueError, match="every combination"):
        ProceduralScenes(max_objects=1, exclude=[[name] for name in OBJECTS])


def overlap_of(boxes: list[tuple]) -> int:
    """The most pixels two boxes share along both axes at once (0 if no two overlap)."""
    most = 0
    for i, (y1, x1, s1) in enumerate(boxes):
        for y2, x2, s2 in boxes[i + 1:]:
            dy, dx = min(y1 + s1, y2 + s2) - max(y1, y2), min(x1 + s1, x2 + s2) - max(x1, x2)
            most = max(most, min(dy, dx) if dy > 0 and dx > 0 else 0)
    return most


def test_draw_renders_any_multiset_with_its_counts():
    """Repeats and up to 5 objects: the image is the multiset pasted into the boxes, the counts are true."""
    source = ProceduralScenes(max_objects=5, overlap=3, seed=2)
    red, blue = OBJECT_TO_INDEX["red cube"], OBJECT_TO_INDEX["blue sphere"]
    objects = torch.tensor([[red, red, red, -1, -1], [red, blue, red, blue, red], [blue, -1, -1, -1, -1]])
    images, counts = source.draw(objects, step=4)
    assert counts[:, red].tolist() == [3, 3, 0] and counts[:, blue].tolist() == [0, 2, 1]
    assert counts.sum(1).tolist() == [3, 5, 1]
    assert torch.equal(images, source.draw(objects, step=4)[0])  # a pure function of (objects, seed, step)
    # The boxes are the layout's, the pixels the reference paste's: draw is layout + render for given objects.
    g = scenes.step_generator("cpu", 2, 4, 0)
    boxes = source._place(objects, lambda *shape: torch.rand(shape, generator=g))
    reference = np.stack([paste(o, b, 32) for o, b in zip(*as_lists(objects, boxes))])
    torch.testing.assert_close(images, torch.from_numpy(reference).permute(0, 3, 1, 2) * 2 - 1, rtol=0, atol=1e-6)
    assert all(overlap_of(b) <= 3 for b in as_lists(objects, boxes)[1])
    with pytest.raises(ValueError, match="1 to max_objects=5 slots"):
        source.draw(torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="from 0 to 23"):
        source.draw(torch.tensor([[24]]))


def test_multisets_repeat_objects_in_the_asked_share():
    source = ProceduralScenes(max_objects=5, overlap=3, seed=0)
    objects = source.multisets(0, 4000, duplicate_share=0.5)
    n = (objects >= 0).sum(1)
    counts = source.labels(objects)
    repeated = (counts > 1).any(1)
    np.testing.assert_allclose([(n == k).float().mean() for k in range(1, 6)], [0.2] * 5, atol=0.025)
    assert not repeated[n == 1].any()
    assert abs(repeated[n > 1].float().mean() - 0.5) < 0.03
    assert not (source.labels(source.multisets(1, 500, duplicate_share=0.0)) > 1).any()
    every = source.multisets(1, 500, duplicate_share=1.0)  # every scene of 2+ objects repeats one
    assert torch.equal((source.labels(every) > 1).any(1), (every >= 0).sum(1) > 1)
    objs, boxes = as_lists(objects[:500], source._place(objects[:500], lambda *s: torch.rand(s)))
    assert all(overlap_of(b) <= 3 for b in boxes)
    assert all(0 <= y and 0 <= x and y + s <= 32 and x + s <= 32 for b in boxes for (y, x, s) in b)
    with pytest.raises(ValueError, match="overlap"):
        ProceduralScenes(overlap=11)
