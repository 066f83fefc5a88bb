"""Every figure of condiff.plotting builds, has the axes it should, and saves to PNG."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from matplotlib.figure import Figure
from PIL import Image

from condiff import plotting
from condiff.pipeline import to_numpy_images


def check(fig, n_axes: int | None = None) -> None:
    """A Figure with ``n_axes`` axes that saves to PNG; closed afterwards."""
    try:
        assert isinstance(fig, Figure)
        if n_axes is not None:
            assert len(fig.axes) == n_axes
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        plt.close(fig)


def test_to_numpy_accepts_every_image_form():
    tensor = torch.rand(2, 3, 8, 8)
    array = tensor.permute(0, 2, 3, 1).numpy()
    pil = [Image.fromarray((a * 255).round().astype(np.uint8)) for a in array]
    assert to_numpy_images(tensor).shape == (2, 8, 8, 3)
    np.testing.assert_allclose(to_numpy_images(tensor), array)
    np.testing.assert_allclose(to_numpy_images(pil), array, atol=1 / 255)
    np.testing.assert_allclose(to_numpy_images(tensor * 2 - 1, value_range=(-1, 1)), array, atol=1e-6)
    np.testing.assert_allclose(to_numpy_images(tensor[:, :1]), array[..., :1].repeat(3, -1))  # grayscale -> RGB
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\), got \(8, 8, 3\)"):
        to_numpy_images(array[0])  # one image, no batch axis


def test_image_grid_with_captions_and_title():
    images = torch.rand(10, 3, 16, 16)
    captions = ["red cube, blue sphere, gray cylinder"] * 10
    check(plotting.image_grid(images, captions=captions, ncols=4, title="samples"), n_axes=12)  # 3 x 4


def test_image_grid_pil_and_numpy():
    array = np.random.default_rng(0).random((3, 16, 16, 3))
    pil = [Image.fromarray((a * 255).astype(np.uint8)) for a in array]
    check(plotting.image_grid(array), n_axes=3)
    check(plotting.image_grid(pil, ncols=2), n_axes=4)
    with pytest.raises(ValueError, match="captions"):
        plotting.image_grid(array, captions=["a"])


def test_loss_curve_with_and_without_lr():
    history = [{"step": s, "loss": 1.0 / (s + 1) + 0.05} for s in range(200)]
    check(plotting.loss_curve(history), n_axes=1)
    with_lr = [dict(h, lr=1e-3 * (1 - h["step"] / 200)) for h in history]
    check(plotting.loss_curve(with_lr, smooth=20, title="loss"), n_axes=2)  # twin axis for lr
    check(plotting.loss_curve(history[:3], smooth=50), n_axes=1)  # shorter than the window


def test_trajectory_strip_both_layouts_and_ranges():
    frames = [torch.rand(3, 3, 16, 16) * 2 - 1 for _ in range(6)]  # (B, 3, H, W) in [-1, 1]
    check(plotting.trajectory_strip(frames, [999, 800, 600, 400, 200, 0], title="denoising"), n_axes=18)
    frames01 = [np.random.default_rng(i).random((2, 16, 16, 3)) for i in range(4)]  # (B, H, W, 3)
    check(plotting.trajectory_strip(frames01, [3, 2, 1, 0], value_range=(0, 1)), n_axes=8)
    with pytest.raises(ValueError, match="timesteps"):
        plotting.trajectory_strip(frames, [1, 0])
    fig = plotting.trajectory_strip(frames, [999, 800, 600, 400, 200, 0], x0_frames=frames)  # x_t and x0-hat rows
    check(fig, n_axes=36)
    assert [t.get_text() for t in fig.axes[0].texts] == ["x_t"]
    with pytest.raises(ValueError, match="x0-hat"):
        plotting.trajectory_strip(frames, [999, 800, 600, 400, 200, 0], x0_frames=frames[:2])


@pytest.fixture(scope="module")
def schedulers():
    return {
        "linear": DDPMScheduler(beta_schedule="linear"),
        "cosine": DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
    }


def test_noise_schedules(schedulers):
    check(plotting.noise_schedules(schedulers), n_axes=2)


def test_noised_strip(schedulers):
    image = torch.rand(3, 16, 16) * 2 - 1
    check(plotting.noised_strip(image, schedulers, [0, 250, 500, 999]), n_axes=8)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        plotting.noised_strip(image[None], schedulers, [0])


def test_guidance_sweep():
    sweep = {w: torch.rand(3, 3, 16, 16) for w in (0.0, 2.0, 7.5)}
    captions = ["red cube", "blue sphere, gray cylinder", "yellow cube"]
    fig = plotting.guidance_sweep(sweep, captions=captions)
    assert [t.get_text() for t in fig.axes[0].texts] == ["w = 0.0"]  # row label left of the row
    assert fig.axes[1].get_title() == "blue sphere,\ngray cylinder"  # column titles wrapped at the comma
    check(fig, n_axes=9)
    check(plotting.guidance_sweep(sweep), n_axes=9)
    with pytest.raises(ValueError, match="3 columns but 2 captions"):
        plotting.guidance_sweep(sweep, captions=captions[:2])


def test_accuracy_bars_and_curve():
    results = {"time-sum": {"test": 0.9, "new_test": 0.8}, "cross-attn": {"test": 1.0, "new_test": 0.75}}
    check(plotting.accuracy_bars(results, title="accuracy"), n_axes=1)
    check(plotting.accuracy_bars({"a": {"test": 0.5}, "b": {"new_test": 0.4}}), n_axes=1)  # missing split
    curves = {"test": [0.3, 0.6, 0.8, 0.85], "new_test": [0.2, 0.5, 0.7, 0.72]}
    check(plotting.accuracy_curve([0, 1, 3, 7.5], curves, xlabel="guidance scale w"), n_axes=1)
