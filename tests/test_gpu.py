"""Checks that need a GPU (skipped without one): the scenes drawn on it, and a step that never waits for it.

A GPU session runs them first, in one call: ``pytest tests/test_gpu.py -q`` (well under a minute).
"""
from __future__ import annotations

import warnings

import pytest
import torch
from tiny import TINY

from condiff.data.iclevr import held_out_combinations
from condiff.data.scenes import ProceduralScenes
from condiff.recipes import RECIPES
from condiff.train import default_data, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_scenes_drawn_on_the_gpu_match_the_cpu_renderer():
    gpu = ProceduralScenes(exclude=held_out_combinations(), seed=0, device="cuda")
    cpu = ProceduralScenes(exclude=held_out_combinations(), seed=0)
    objects, boxes = gpu.layout(0, 512)
    images, labels = gpu.batch(0, 512)
    assert images.is_cuda and labels.is_cuda and images.shape == (512, 3, 32, 32)
    torch.testing.assert_close(images.cpu(), cpu.render_layout(objects.cpu(), boxes.cpu()), rtol=0, atol=1e-5)
    torch.testing.assert_close(labels.cpu(), cpu.labels(objects.cpu()))
    data = default_data(RECIPES["time_sum"], "cuda")
    assert isinstance(data, ProceduralScenes) and data.device.type == "cuda"


def _syncs_during_training(tmp_path, steps: int) -> int:
    """How many times the host waited for the GPU in a run of ``steps`` (one loss read-back, at the end)."""
    recipe = TINY.with_overrides(max_steps=steps, checkpoint_every=steps)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(recipe, tmp_path / f"run{steps}", progress=False, log_every=steps, device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def test_training_steps_never_wait_for_the_gpu(tmp_path):
    """Ten more steps add no host-device synchronisation: setup, the read-back and the save are all there is."""
    short, long = _syncs_during_training(tmp_path, 10), _syncs_during_training(tmp_path, 20)
    assert long == short, f"{long - short} synchronisations in 10 extra steps"
