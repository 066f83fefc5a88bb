"""The figures of the notebooks: image grids, sampling trajectories, noise schedules, training
curves and accuracy charts. Matplotlib only (it works with the Agg backend); every function
builds its figure with ``plt.subplots``, never calls ``plt.show``, and returns the
``matplotlib.figure.Figure``, so a notebook displays it and a script can ``fig.savefig`` it.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .pipeline import to_numpy_images

CAPTION_FONTSIZE = 6.5  # captions beneath images
LABEL_FONTSIZE = 8  # row labels and column titles


# ---------------------------------------------------------------------------------------------
# Image figures: every one is a grid of image rows
# ---------------------------------------------------------------------------------------------

def _wrap(caption: str, scale: float, fontsize: float) -> str:
    """Wrap a caption to the width of a ``scale``-inch image at ``fontsize``, keeping "red cube" together
    and each of its lines apart."""
    if "\n" in caption:
        return "\n".join(_wrap(line, scale, fontsize) for line in caption.split("\n"))
    width = max(8, int(scale * 124 / fontsize))  # characters per line: 19 at 6.5 pt under a 1-inch image
    if "," not in caption:
        return textwrap.fill(caption, width)
    # A no-break space between each object's colour and shape keeps "red cube" on one line.
    joined = ", ".join("\u00a0".join(part.strip().rsplit(" ", 1)) for part in caption.split(","))
    return textwrap.fill(joined, width, break_on_hyphens=False, break_long_words=False).replace("\u00a0", " ")


def _text_inches(texts: Sequence[str], fontsize: float) -> float:
    """Height of the tallest of ``texts`` at ``fontsize``, plus a gap; 0 without texts."""
    return max(t.count("\n") + 1 for t in texts) * fontsize * 1.3 / 72 + 0.06 if texts else 0.0


def _image_rows(
    rows: Sequence[np.ndarray], row_labels: Sequence[str] | None = None,
    column_titles: Sequence[str] | None = None, captions: Sequence[Sequence[str]] | None = None,
    title: str | None = None, scale: float = 1.0,
) -> Figure:
    """A grid of image rows, each ``(n, H, W, 3)`` in [0, 1], square images ``scale`` inches wide.

    Optional: a label left of each row, a title above each column, a caption beneath each image
    (one list per row) and a title above everything. Captions and column titles are wrapped to the
    image's width; the figure is sized in inches so that every text fits.
    """
    nrows, ncols = len(rows), max(len(row) for row in rows)
    column_titles = [_wrap(t, scale, LABEL_FONTSIZE) for t in column_titles or []]
    captions = [[_wrap(c, scale, CAPTION_FONTSIZE) for c in row] for row in captions or []]
    pad = 0.05 * scale  # gap between neighbouring images
    below = _text_inches([c for row in captions for c in row], CAPTION_FONTSIZE)  # under each image
    left = 0.15 + 0.075 * max(len(label) for label in row_labels) if row_labels else 0.0  # about 8 pt characters
    top = (0.35 if title else 0.0) + _text_inches(column_titles, LABEL_FONTSIZE)
    width = left + ncols * (scale + pad)
    height = top + nrows * (scale + below + pad)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)  # axes: (nrows, ncols)
    fig.subplots_adjust(
        left=(left + pad / 2) / width, right=1 - pad / 2 / width,
        bottom=(below + pad / 2) / height, top=1 - (top + pad / 2) / height,
        wspace=pad / scale, hspace=(below + pad) / scale,
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            axes[r, c].imshow(image, interpolation="nearest")
            if captions:
                axes[r, c].text(0.5, -0.03, captions[r][c], transform=axes[r, c].transAxes, ha="center", va="top",
                                fontsize=CAPTION_FONTSIZE, linespacing=1.1)
        if row_labels:
            axes[r, 0].text(-0.08, 0.5, row_labels[r], transform=axes[r, 0].transAxes, ha="right", va="center",
                            fontsize=LABEL_FONTSIZE)
    for c, column_title in enumerate(column_titles):
        axes[0, c].set_title(column_title, fontsize=LABEL_FONTSIZE, linespacing=1.1, pad=2)
    if title:
        fig.suptitle(title, y=1 - 0.08 / height, va="top", fontsize=10)
    return fig


def image_grid(
    images, captions: Sequence[str] | None = None, ncols: int = 8, title: str | None = None,
    scale: float = 1.2,
) -> Figure:
    """A grid of images, ``ncols`` per row, each with an optional wrapped caption beneath."""
    x = to_numpy_images(images)  # (B, H, W, 3)
    if captions is not None and len(captions) != len(x):
        raise ValueError(f"got {len(x)} images but {len(captions)} captions")
    ncols = max(1, min(ncols, len(x)))
    starts = range(0, len(x), ncols)
    rows = [x[i:i + ncols] for i in starts]
    captions = [captions[i:i + ncols] for i in starts] if captions is not None else None
    return _image_rows(rows, captions=captions, title=title, scale=scale)


def trajectory_strip(
    frames: Sequence, timesteps: Sequence[int], title: str | None = None,
    value_range: tuple[float, float] = (-1, 1), scale: float = 1.0, x0_frames: Sequence | None = None,
) -> Figure:
    """The sampling trajectory: one row per image (x_t above x0-hat with ``x0_frames``), one column per timestep."""
    if len(frames) != len(timesteps) or (x0_frames is not None and len(x0_frames) != len(frames)):
        raise ValueError(f"got {len(frames)} frames, {len(timesteps)} timesteps, {len(x0_frames or frames)} x0-hats")
    if x0_frames is not None:  # (B, 3, H, W) each -> (2B, 3, H, W): x_t, x0-hat, x_t, x0-hat, ...
        frames = [torch.stack([xt, x0], 1).flatten(0, 1) for xt, x0 in zip(frames, x0_frames)]
    rows = np.stack([to_numpy_images(f, value_range) for f in frames], axis=1)  # (rows, T, H, W, 3)
    row_labels = ["x_t", "x0-hat"] * (len(rows) // 2) if x0_frames is not None else None
    return _image_rows(rows, row_labels, [f"t={int(t)}" for t in timesteps], title=title, scale=scale)


def noised_strip(
    image: torch.Tensor, schedulers: Mapping[str, object], timesteps: Sequence[int], seed: int = 0,
    scale: float = 1.0,
) -> Figure:
    """One image noised to each timestep, one row per scheduler, the same noise in every row."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be one (3, H, W) tensor in [-1, 1], got shape {tuple(image.shape)}")
    x0 = image[None].float().cpu()  # (1, 3, H, W)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))  # (1, 3, H, W)
    rows = []
    for scheduler in schedulers.values():
        xt = torch.cat([scheduler.add_noise(x0, noise, torch.tensor([int(t)])) for t in timesteps])  # (T, 3, H, W)
        rows.append(to_numpy_images(xt, (-1, 1)))  # (T, H, W, 3)
    return _image_rows(rows, list(schedulers), [f"t={int(t)}" for t in timesteps], scale=scale)


def guidance_sweep(
    images_per_scale: Mapping[float, object], captions: Sequence[str] | None = None,
    value_range: tuple[float, float] = (0, 1), scale: float = 1.0,
) -> Figure:
    """One row per guidance scale ("w = 2.0"), the same prompts across; captions head the columns."""
    rows = [to_numpy_images(images, value_range) for images in images_per_scale.values()]  # (n, H, W, 3) each
    ncols = max(len(x) for x in rows)
    if captions is not None and len(captions) != ncols:
        raise ValueError(f"got {ncols} columns but {len(captions)} captions")
    return _image_rows(rows, [f"w = {float(w)}" for w in images_per_scale], captions, scale=scale)


# ---------------------------------------------------------------------------------------------
# Curves and charts
# ---------------------------------------------------------------------------------------------

def loss_curve(
    history: Sequence[Mapping[str, float]], smooth: int = 50, title: str = "Training loss",
) -> Figure:
    """Raw loss (faint) and its moving average against the step, log y; lr on a twin axis if logged."""
    if len(history) == 0:
        raise ValueError("history is empty: nothing to plot")
    steps = np.array([h["step"] for h in history], dtype=float)  # (N,)
    losses = np.array([h["loss"] for h in history], dtype=float)  # (N,)
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.plot(steps, losses, color="C0", alpha=0.25, lw=0.8, label="loss")
    window = min(smooth, len(losses))
    if window > 1:
        average = np.convolve(losses, np.ones(window) / window, mode="valid")  # (N - window + 1,)
        ax.plot(steps[window - 1:], average, color="C0", lw=1.8, label=f"moving average ({window})")
    ax.set(yscale="log", xlabel="step", ylabel="loss", title=title)
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    if any("lr" in h for h in history):
        lr_steps = [h["step"] for h in history if "lr" in h]
        lrs = [h["lr"] for h in history if "lr" in h]
        ax2 = ax.twinx()
        ax2.plot(lr_steps, lrs, color="C1", lw=1.0, ls="--", label="learning rate")
        ax2.set_ylabel("learning rate", color="C1")
        ax2.tick_params(axis="y", colors="C1")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right", fontsize=8)
    return fig


def noise_schedules(schedulers: Mapping[str, object]) -> Figure:
    """Two panels: alpha-bar against t, and log10 SNR = log10(abar / (1 - abar)) against t."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.3), layout="constrained")
    for name, scheduler in schedulers.items():
        abar = scheduler.alphas_cumprod.double().cpu().numpy()  # (T,)
        t = np.arange(len(abar))
        ax1.plot(t, abar, label=name)
        ax2.plot(t, np.log10(abar / np.clip(1 - abar, 1e-12, None)), label=name)
    ax1.set(xlabel="timestep t", ylabel=r"$\bar\alpha_t$", title="signal kept: alpha-bar")
    ax2.axhline(0, color="gray", lw=0.6)  # SNR = 1: as much noise as signal
    ax2.set(xlabel="timestep t", ylabel=r"$\log_{10}$ SNR", title="signal-to-noise ratio")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def accuracy_bars(results: Mapping[str, Mapping[str, float]], title: str | None = None) -> Figure:
    """Grouped bars: one group per method, one bar per split, the value printed on each bar."""
    groups = list(results)
    splits = list(dict.fromkeys(split for scores in results.values() for split in scores))
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(splits))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.5 + 1.2 * len(groups)), 3.5), layout="constrained")
    for j, split in enumerate(splits):
        values = [results[g].get(split, float("nan")) for g in groups]
        bars = ax.bar(x + (j - (len(splits) - 1) / 2) * width, values, width, label=split)
        texts = ["" if math.isnan(v) else f"{v:.2f}" for v in values]
        ax.bar_label(bars, labels=texts, fontsize=7, padding=1)
    ax.set_xticks(x, groups)
    # Accuracies lie in [0, 1]; the headroom keeps the labels of full bars.
    ax.set(ylim=(0, 1.1), yticks=np.linspace(0, 1, 6), ylabel="accuracy", title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=max(1, len(splits)),
              frameon=False)
    return fig


def accuracy_curve(
    xs: Sequence[float] | Mapping[str, Sequence[float]], ys_by_name: Mapping[str, Sequence[float]], xlabel: str,
    title: str | None = None, logx: bool = False,
) -> Figure:
    """Accuracy against a swept quantity (guidance scale, steps...), one line with markers per name.

    ``xs`` is shared by every line, or a mapping with each name's own x positions.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    for name, ys in ys_by_name.items():
        line_xs = xs[name] if isinstance(xs, Mapping) else xs
        if len(ys) != len(line_xs):
            raise ValueError(f"{name!r} has {len(ys)} values for {len(line_xs)} x positions")
        ax.plot(line_xs, ys, marker="o", label=name)
    ax.set(xscale="log" if logx else "linear", ylim=(0, 1.02), xlabel=xlabel, ylabel="accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def loss_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], smooth: int = 50,
                title: str = "Training loss") -> Figure:
    """Several runs' losses in one figure: each run's moving average against the step, log y."""
    if not histories or any(len(h) == 0 for h in histories.values()):
        raise ValueError("histories must map run names to non-empty histories")
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    for i, (name, history) in enumerate(histories.items()):
        steps = np.array([h["step"] for h in history], dtype=float)  # (N,)
        losses = np.array([h["loss"] for h in history], dtype=float)  # (N,)
        window = max(1, min(smooth, len(losses)))
        average = np.convolve(losses, np.ones(window) / window, mode="valid")  # (N - window + 1,)
        ax.plot(steps[window - 1:], average, color=f"C{i}", lw=1.8, label=name)
    ax.set(yscale="log", xlabel="step", ylabel=f"loss (moving average of {smooth})", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
