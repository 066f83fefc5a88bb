"""The sprites loader: the fixture round trip, seeded batches, and clear errors on bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import write_sprites_fixture

from condiff.data.sprites import (
    IMAGES_FILE,
    LABELS_FILE,
    SPRITE_CLASSES,
    SpritesData,
    load_sprites,
)


def test_fixture_round_trip(tmp_path):
    write_sprites_fixture(tmp_path, n=16, seed=0)
    images, labels = load_sprites(tmp_path)
    assert images.shape == (16, 3, 16, 16) and images.dtype == torch.float32
    assert labels.shape == (16, len(SPRITE_CLASSES)) and labels.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    assert torch.all(labels.sum(dim=1) == 1) and torch.all((labels == 0) | (labels == 1))
    raw = np.load(tmp_path / IMAGES_FILE)  # (N, 16, 16, 3) uint8
    np.testing.assert_allclose((images.permute(0, 2, 3, 1).numpy() + 1) * 127.5, raw, atol=1e-4)


def test_batches_are_seeded(tmp_path):
    data = SpritesData(write_sprites_fixture(tmp_path, n=32), seed=0)
    assert (data.size, data.num_labels, data.max_objects) == (16, 5, 1)
    assert data.label_names == SPRITE_CLASSES
    x0, y0 = data.batch(step=0, batch_size=8)
    assert x0.shape == (8, 3, 16, 16) and y0.shape == (8, 5)
    x0_again, y0_again = data.batch(step=0, batch_size=8)
    assert torch.equal(x0, x0_again) and torch.equal(y0, y0_again)
    x1, _ = data.batch(step=1, batch_size=8)
    assert not torch.equal(x0, x1)
    x_rank1, _ = data.batch(step=0, batch_size=8, rank=1)
    assert not torch.equal(x0, x_rank1)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=IMAGES_FILE) as error:
        load_sprites(tmp_path)
    message = str(error.value)
    assert LABELS_FILE in message and "download" in message and "How Diffusion Models Work" in message
    write_sprites_fixture(tmp_path)
    (tmp_path / LABELS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / LABELS_FILE)):
        SpritesData(tmp_path)


def test_wrong_image_shape(tmp_path):
    write_sprites_fixture(tmp_path)
    np.save(tmp_path / IMAGES_FILE, np.zeros((16, 3, 16, 16), dtype=np.uint8))  # channels first
    with pytest.raises(ValueError, match=r"shape \(16, 3, 16, 16\), expected \(N, 16, 16, 3\)"):
        load_sprites(tmp_path)


def test_wrong_image_dtype(tmp_path):
    write_sprites_fixture(tmp_path)
    np.save(tmp_path / IMAGES_FILE, np.zeros((16, 16, 16, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="expected uint8"):
        load_sprites(tmp_path)


def test_wrong_label_shape(tmp_path):
    write_sprites_fixture(tmp_path)
    np.save(tmp_path / LABELS_FILE, np.zeros((16, 4)))
    with pytest.raises(ValueError, match=r"shape \(16, 4\), expected \(N, 5\)"):
        load_sprites(tmp_path)


def test_mismatched_counts(tmp_path):
    write_sprites_fixture(tmp_path, n=16)
    np.save(tmp_path / LABELS_FILE, np.eye(5)[np.zeros(10, dtype=int)])
    with pytest.raises(ValueError, match="16 images but 10 labels"):
        load_sprites(tmp_path)
