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

CAPTION_FONTSIZE = 6.5
LINE_INCHES = CAPTION_FONTSIZE * 1.3 / 72  # height of one caption line


# ---------------------------------------------------------------------------------------------
# Helpers: a grid of square image axes, caption wrapping
# ---------------------------------------------------------------------------------------------

def _grid_figure(
    nrows: int, ncols: int, scale: float, below: float = 0.0, left: float = 0.0, top: float = 0.0,
) -> tuple[Figure, np.ndarray]:
    """A figure of nrows x ncols square image axes, ``scale`` inches each, axes off.

    All room is in inches: ``below`` each image (captions), ``left`` of the grid (row labels)
    and ``top`` of the grid (the title, column titles).
    """
    pad = 0.05 * scale  # gap between neighbouring images
    width = left + ncols * (scale + pad)
    height = top + nrows * (scale + below + pad)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=(left + pad / 2) / width, right=1 - pad / 2 / width,
        bottom=(below + pad / 2) / height, top=1 - (top + pad / 2) / height,
        wspace=pad / scale, hspace=(below + pad) / scale,
    )
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes  # axes: (nrows, ncols)


def _wrap(caption: str, width: int) -> str:
    """Wrap a caption to lines of about ``width`` characters, keeping "red cube" together."""
    parts = [p.strip() for p in caption.split(",")]
    if len(parts) == 1:
        return textwrap.fill(caption, width)
    lines, line = [], ""
    for i, part in enumerate(parts):
        word = part + ("," if i < len(parts) - 1 else "")
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(textwrap.fill(line, width) for line in lines)


def _title(fig: Figure, title: str | None) -> None:
    """A title in the ``top`` inches that ``_grid_figure`` left free."""
    if title:
        fig.suptitle(title, y=1 - 0.08 / fig.get_figheight(), va="top", fontsize=10)


# ---------------------------------------------------------------------------------------------
# Image figures
# ---------------------------------------------------------------------------------------------

def image_grid(
    images, captions: Sequence[str] | None = None, ncols: int = 8, title: str | None = None,
    scale: float = 1.2,
) -> Figure:
    """A grid of images, ``ncols`` per row, each with an optional wrapped caption beneath."""
    x = to_numpy_images(images)  # (B, H, W, 3)
    n = len(x)
    if captions is not None and len(captions) != n:
        raise ValueError(f"got {n} images but {len(captions)} captions")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    width_chars = max(8, int(19 * scale))  # characters that fit under one image
    wrapped = [_wrap(c, width_chars) for c in captions] if captions is not None else None
    max_lines = max((w.count("\n") + 1 for w in wrapped), default=0) if wrapped else 0
    below = max_lines * LINE_INCHES + (0.06 if wrapped else 0.0)
    top = 0.35 if title else 0.0
    fig, axes = _grid_figure(nrows, ncols, scale, below=below, top=top)
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(x[i], interpolation="nearest")
        if wrapped:
            ax.text(0.5, -0.03, wrapped[i], transform=ax.transAxes, ha="center", va="top",
                    fontsize=CAPTION_FONTSIZE, linespacing=1.1)
    _title(fig, title)
    return fig


def label_rows(
    images, row_labels: Sequence[str], ncols: int, title: str | None = None, scale: float = 1.0,
) -> Figure:
    """One row per label, ``ncols`` images each, label text on the left; images row-major."""
    x = to_numpy_images(images)  # (rows * ncols, H, W, 3)
    nrows = len(row_labels)
    if len(x) != nrows * ncols:
        raise ValueError(f"got {len(x)} images, expected {nrows} rows x {ncols} columns = {nrows * ncols}")
    left = 0.15 + 0.075 * max(len(label) for label in row_labels)  # about 8 pt characters
    top = 0.35 if title else 0.0
    fig, axes = _grid_figure(nrows, ncols, scale, left=left, top=top)
    for r, label in enumerate(row_labels):
        for c in range(ncols):
            axes[r, c].imshow(x[r * ncols + c], interpolation="nearest")
        axes[r, 0].text(-0.08, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center",
                        fontsize=8)
    _title(fig, title)
    return fig


def trajectory_strip(
    frames: Sequence, timesteps: Sequence[int], title: str | None = None,
    value_range: tuple[float, float] = (-1, 1), scale: float = 1.0,
) -> Figure:
    """The sampling trajectory: one row per image of the batch, one column per timestep."""
    if len(frames) != len(timesteps):
        raise ValueError(f"got {len(frames)} frames but {len(timesteps)} timesteps")
    columns = [to_numpy_images(f, value_range) for f in frames]  # T x (B, H, W, 3)
    nrows, ncols = len(columns[0]), len(columns)
    top = (0.35 if title else 0.0) + 0.2  # title, then the column titles
    fig, axes = _grid_figure(nrows, ncols, scale, top=top)
    for c, (frame, t) in enumerate(zip(columns, timesteps)):
        axes[0, c].set_title(f"t={int(t)}", fontsize=8, pad=3)
        for r in range(nrows):
            axes[r, c].imshow(frame[r], interpolation="nearest")
    _title(fig, title)
    return fig


def noised_strip(
    image: torch.Tensor, schedulers: Mapping[str, object], timesteps: Sequence[int], seed: int = 0,
    scale: float = 1.0,
) -> Figure:
    """One image noised to each timestep, one row per scheduler, the same noise in every row."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be one (3, H, W) tensor in [-1, 1], got shape {tuple(image.shape)}")
    x0 = image[None].float().cpu()  # (1, 3, H, W)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))  # (1, 3, H, W)
    names = list(schedulers)
    left = 0.15 + 0.075 * max(len(name) for name in names)
    fig, axes = _grid_figure(len(names), len(timesteps), scale, left=left, top=0.2)
    for r, name in enumerate(names):
        for c, t in enumerate(timesteps):
            xt = schedulers[name].add_noise(x0, noise, torch.tensor([int(t)]))  # (1, 3, H, W)
            axes[r, c].imshow(to_numpy_images(xt, (-1, 1))[0], interpolation="nearest")
            if r == 0:
                axes[r, c].set_title(f"t={int(t)}", fontsize=8, pad=3)
        axes[r, 0].text(-0.08, 0.5, name, transform=axes[r, 0].transAxes, ha="right", va="center",
                        fontsize=8)
    return fig


def guidance_sweep(
    images_per_scale: Mapping[float, object], captions: Sequence[str] | None = None,
    value_range: tuple[float, float] = (0, 1), scale: float = 1.0,
) -> Figure:
    """One row per guidance scale ("w = 2.0"), the same prompts across; captions head the columns."""
    rows = {w: to_numpy_images(images, value_range) for w, images in images_per_scale.items()}
    ncols = max(len(x) for x in rows.values())
    if captions is not None and len(captions) != ncols:
        raise ValueError(f"got {ncols} columns but {len(captions)} captions")
    width_chars = max(8, int(19 * scale))
    wrapped = [_wrap(c, width_chars) for c in captions] if captions is not None else None
    top = (max(w.count("\n") + 1 for w in wrapped) * LINE_INCHES + 0.06) if wrapped else 0.0
    labels = [f"w = {float(w)}" for w in rows]
    left = 0.15 + 0.075 * max(len(label) for label in labels)
    fig, axes = _grid_figure(len(rows), ncols, scale, left=left, top=top)
    for r, (label, x) in enumerate(zip(labels, rows.values())):
        for c in range(len(x)):
            axes[r, c].imshow(x[c], interpolation="nearest")
        axes[r, 0].text(-0.08, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center",
                        fontsize=8)
    for c, caption in enumerate(wrapped or []):
        axes[0, c].text(0.5, 1.03, caption, transform=axes[0, c].transAxes, ha="center", va="bottom",
                        fontsize=CAPTION_FONTSIZE, linespacing=1.1)
    return fig


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
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
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
    ax.set_title(title)
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
    ax.set_ylim(0, 1.1)  # accuracies lie in [0, 1]; the headroom keeps the labels of full bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=max(1, len(splits)),
              frameon=False)
    if title:
        ax.set_title(title)
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
    if logx:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig
