"""The torch renderer draws what the numpy renderer draws: same pixels for a layout, same statistics.

The statistics compare 16,000 scenes of each renderer (fixed seeds, so the test is deterministic);
the tolerances are about four standard errors of the difference, and each one fails a renderer
that gets that part of the distribution wrong (uniform counts instead of rejection-adjusted ones,
layouts that skip the numpy renderer's restarts, objects placed in label order, a missing object,
a shifted sprite).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from condiff.data import torch_scenes
from condiff.data.iclevr import held_out_combinations
from condiff.data.labels import NUM_LABELS, OBJECT_TO_INDEX, OBJECTS
from condiff.data.scenes import ProceduralScenes, _layout, object_base, random_objects, render_boxes, to_tensor
from condiff.data.torch_scenes import TorchScenes, allowed_combinations

N = 16_000
HELD_OUT = held_out_combinations()


def as_lists(objects: torch.Tensor, boxes: torch.Tensor) -> tuple[list[list[int]], list[list[tuple]]]:
    """Torch layouts -> per scene, its object indices and their boxes (empty slots dropped)."""
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
    """For the torch renderer's layouts, the numpy paste (``render_boxes``) gives the same image."""
    source = TorchScenes(size=size, exclude=HELD_OUT, seed=3)
    objects, boxes = source.layout(step=0, batch_size=300)
    images = source.render_layout(objects, boxes)  # (B, 3, H, W) in [-1, 1]
    reference = to_tensor(np.stack([render_boxes([OBJECTS[i] for i in o], b, size)
                                    for o, b in zip(*as_lists(objects, boxes))]))
    assert images.shape == reference.shape == (300, 3, size, size)
    torch.testing.assert_close(images, reference, rtol=0, atol=1e-6)  # bit for bit on CPU
    assert (images != source.render_layout(objects[:, :0], boxes[:, :0])).any()  # objects were drawn


def test_batches_are_seeded_by_seed_step_and_rank():
    a_images, a_labels = TorchScenes(seed=3).batch(step=5, batch_size=8, rank=1)
    b_images, b_labels = TorchScenes(seed=3).batch(step=5, batch_size=8, rank=1)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    for other in (TorchScenes(seed=3).batch(6, 8, 1), TorchScenes(seed=3).batch(5, 8, 0),
                  TorchScenes(seed=4).batch(5, 8, 1)):
        assert not torch.equal(a_images, other[0])
    assert a_images.shape == (8, 3, 32, 32) and a_images.dtype == torch.float32 and a_images.is_contiguous()
    assert a_images.min() >= -1 and a_images.max() <= 1
    assert a_labels.shape == (8, NUM_LABELS) and set(a_labels.sum(1).tolist()) <= {1.0, 2.0, 3.0}
    assert set(a_labels.unique().tolist()) <= {0.0, 1.0}


def test_labels_are_the_objects_drawn():
    source = TorchScenes(exclude=HELD_OUT, seed=0)
    objects, _ = source.layout(0, 64)
    labels = source.labels(objects)
    for row, objs in zip(labels, objects.tolist()):
        assert sorted(row.nonzero().flatten().tolist()) == sorted(i for i in objs if i >= 0)


def _numpy_layouts(n: int) -> tuple[list[list[int]], list[list[tuple]]]:
    rng, base = np.random.default_rng(1), object_base(32)
    objs, boxes = [], []
    for _ in range(n):
        names = random_objects(rng, 3, HELD_OUT)
        objs.append([OBJECT_TO_INDEX[name] for name in names])
        boxes.append(_layout(len(names), base, 32, rng))
    return objs, boxes


def _torch_layouts(n: int, attempts: int = 5) -> tuple[list[list[int]], list[list[tuple]]]:
    source = TorchScenes(exclude=HELD_OUT, seed=1, attempts=attempts)
    parts = [source.layout(step, 2000) for step in range(n // 2000)]
    return as_lists(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def _statistics(objs, boxes) -> dict[str, np.ndarray]:
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


def test_large_batch_statistics_match_the_numpy_renderer(monkeypatch):
    # The fallback layout is for one scene in 10^7: mark its boxes, so that any use of it fails below.
    monkeypatch.setattr(TorchScenes, "_fallback", lambda self, side, rand: torch.full((*side.shape, 3), -99))
    objs, boxes = _torch_layouts(N)
    # Never a held-out combination, never two boxes that overlap, every box inside the image.
    assert not {frozenset(OBJECTS[i] for i in o) for o in objs} & HELD_OUT
    assert all(len(set(o)) == len(o) for o in objs)
    assert not any(overlapping(bs) for bs in boxes)
    assert all(0 <= y and 0 <= x and y + s <= 32 and x + s <= 32 for bs in boxes for (y, x, s) in bs)

    ours, theirs = _statistics(objs, boxes), _statistics(*_numpy_layouts(N))
    # Object counts: rejecting held-out sets makes 2 objects rarer than 1 or 3 (exact values below).
    combos, probs = allowed_combinations(3, HELD_OUT)
    exact = np.array([probs[(combos >= 0).sum(1) == k].sum() for k in (1, 2, 3)])
    np.testing.assert_allclose(ours["count"], exact, atol=0.012)
    np.testing.assert_allclose(theirs["count"], exact, atol=0.012)
    np.testing.assert_allclose(ours["label"], theirs["label"], atol=0.012)  # each ~0.083
    np.testing.assert_allclose(ours["side"], theirs["side"], atol=0.015)
    # Where boxes land (px from the centre, per slot): later boxes are pushed out by earlier ones.
    np.testing.assert_allclose(ours["distance"], theirs["distance"], atol=0.25)
    assert ours["distance"][2] + 1 < ours["distance"][4]  # the statistic can tell slots apart


def test_mean_pixel_matches_the_numpy_renderer():
    ours = torch.cat([TorchScenes(exclude=HELD_OUT, seed=2).batch(s, 1000)[0] for s in range(2)])
    theirs = ProceduralScenes(exclude=HELD_OUT, seed=2).batch(0, 2000)[0]
    assert abs(ours.mean() - theirs.mean()) < 0.004  # one object more or less per scene: ~0.03
    torch.testing.assert_close(ours.mean((0, 2, 3)), theirs.mean((0, 2, 3)), rtol=0, atol=0.006)


def test_fallback_layout_fits_without_overlap(monkeypatch):
    """With one try per object most attempts fail, so the grid fallback places the objects."""
    monkeypatch.setattr(torch_scenes, "TRIES_PER_OBJECT", 1)
    source = TorchScenes(exclude=HELD_OUT, seed=0, attempts=1)
    objects, boxes = source.layout(0, 2000)
    objs, bs = as_lists(objects, boxes)
    assert not any(overlapping(b) for b in bs)
    assert all(0 <= y and 0 <= x and y + s <= 32 and x + s <= 32 for b in bs for (y, x, s) in b)
    assert {s for b in bs for (_, _, s) in b} == {11, 12, 13}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        TorchScenes(size=16, max_objects=9)
    with pytest.raises(ValueError, match="every combination"):
        TorchScenes(max_objects=1, exclude=[[name] for name in OBJECTS])
