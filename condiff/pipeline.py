"""``ConditionalDDPMPipeline``: one diffusers pipeline for every conditioning mode.

It follows ``diffusers.DDPMPipeline`` (same ``__call__`` loop, ``randn_tensor``,
``progress_bar``, ``ImagePipelineOutput``) and adds labels and classifier-free guidance:

    pipe = load_pipeline("weights/time_sum")
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    images = pipe(["red cube, blue sphere"], guidance_scale=2.0, num_inference_steps=50).images

A pipeline stores its best guidance weight (and sampler) in ``model_index.json``: ``pipe(labels)``
without ``guidance_scale`` uses ``pipe.config.guidance_scale`` (1.0 when a folder has none).

Notebook 1 writes the same loop by hand; notebook 3 explains guidance.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    ImagePipelineOutput,
)
from diffusers.utils import logging as diffusers_logging
from diffusers.utils.torch_utils import randn_tensor

from .data.labels import to_label_batch
from .models import Denoiser, LabelEncoder

SCHEDULERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm++": DPMSolverMultistepScheduler}


def make_scheduler(name: str, config) -> DDPMScheduler | DDIMScheduler | DPMSolverMultistepScheduler:
    """A sampler named ``ddpm``, ``ddim`` or ``dpm++`` with the noise schedule of ``config``.

    ``from_config`` keeps the keys the schedulers share (``beta_schedule``, ``num_train_timesteps``,
    ``prediction_type``, ...) and fills the others with the new class's defaults.
    """
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; allowed: {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name].from_config(config)


class ConditionalDDPMPipeline(DiffusionPipeline):
    r"""Generate images from labels with a UNet, a label encoder and any diffusers scheduler.

    Components: ``unet``, ``scheduler``, and ``label_encoder`` (``None`` for an unconditional
    model, which then takes ``batch_size`` instead of labels). Settings in ``model_index.json``: the
    default ``guidance_scale`` and the ``sampler`` (``ddim``, ...) and ``num_inference_steps`` it was scored with.
    """

    model_cpu_offload_seq = "label_encoder->unet"
    _optional_components = ["label_encoder"]

    def __init__(self, unet, scheduler, label_encoder: LabelEncoder | None = None, guidance_scale: float = 1.0,
                 sampler: str | None = None, num_inference_steps: int | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, label_encoder=label_encoder)
        self.register_to_config(guidance_scale=guidance_scale, sampler=sampler, num_inference_steps=num_inference_steps)

    def default_steps(self) -> int:
        """The stored steps when the current scheduler is the stored sampler, else 1000 for DDPM and 50 otherwise."""
        stored = self.config.get("sampler")
        if stored and self.config.get("num_inference_steps") and isinstance(self.scheduler, SCHEDULERS[stored]):
            return int(self.config.num_inference_steps)
        return 1000 if isinstance(self.scheduler, DDPMScheduler) else 50

    def encode_labels(self, labels) -> torch.Tensor:
        """Names, lists of names or a tensor -> checked multi-hot tensor ``(B, num_labels)``."""
        config = self.label_encoder.config
        return to_label_batch(labels, config.label_names, config.max_objects)

    @torch.no_grad()
    def __call__(
        self,
        labels: str | Sequence | torch.Tensor | None = None,
        batch_size: int = 1,
        num_images_per_label: int = 1,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], None] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""
        Args:
            labels: one entry per image: ``"red cube, blue sphere"`` or ``["red cube", "blue sphere"]``,
                or a multi-hot tensor ``(B, num_labels)``; all zeros is the null label.
            batch_size: number of images for an unconditional model (ignored when labels are given).
            num_images_per_label: images drawn for each entry of ``labels``.
            guidance_scale: classifier-free guidance weight ``w`` in
                ``eps = eps(null) + w * (eps(label) - eps(null))``; 1 is plain conditional sampling
                (one UNet call per step), 0 ignores the labels. Default: ``config.guidance_scale``.
            num_inference_steps: denoising steps (1000 for DDPM, 25-50 for DDIM or DPM-Solver++);
                default ``default_steps()``.
            output_type: ``"pil"``, ``"np"`` (``(B, H, W, 3)`` in [0, 1]) or ``"pt"`` (``(B, 3, H, W)``).
            callback_on_step_end: called as ``f(pipe, step_index, timestep, tensors)`` after every step, as in
                diffusers; ``tensors`` holds ``x_t`` (the step's input), ``latents`` (its output) and
                ``pred_original_sample`` (x0-hat, ``None`` for samplers that do not report it).
        """
        guidance_scale = self.config.guidance_scale if guidance_scale is None else guidance_scale
        num_inference_steps = self.default_steps() if num_inference_steps is None else num_inference_steps
        check_sampling_args(num_inference_steps, guidance_scale, self.scheduler.config.num_train_timesteps,
                            batch_size=batch_size, num_images_per_label=num_images_per_label)
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"unknown output_type {output_type!r}; allowed: pil, np, pt")

        # 1. Labels -> (B, num_labels), or nothing for an unconditional model.
        if self.label_encoder is None:
            if labels is not None:
                raise ValueError("this pipeline is unconditional: pass batch_size, not labels")
            cond = None
        else:
            if labels is None:
                raise ValueError(
                    "this pipeline is conditional: pass labels, e.g. ['red cube, blue sphere'] "
                    f"(allowed names: {', '.join(self.label_encoder.config.label_names)})"
                )
            cond = self.encode_labels(labels).repeat_interleave(num_images_per_label, dim=0)
            batch_size = cond.shape[0]
            cond = cond.to(self.device)
        use_guidance = cond is not None and guidance_scale != 1.0

        # 2. Start from pure noise: (B, 3, H, W).
        size = self.unet.config.sample_size
        shape = (batch_size, 3, size, size)
        image = randn_tensor(shape, generator=generator, device=self.device, dtype=self.unet.dtype)

        # 3. Denoise step by step.
        denoiser = Denoiser(self.unet, self.label_encoder)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = self.scheduler.scale_model_input(image, t)
            if use_guidance:  # one batched call for (null, label), then mix the two predictions
                both = torch.cat([torch.zeros_like(cond), cond])
                eps_null, eps_cond = denoiser(torch.cat([model_input] * 2), t, both).chunk(2)
                noise_pred = eps_null + guidance_scale * (eps_cond - eps_null)
            else:
                noise_pred = denoiser(model_input, t, cond)
            output = self.scheduler.step(noise_pred, t, image, generator=generator)
            if callback_on_step_end is not None:
                x0_hat = getattr(output, "pred_original_sample", None)
                callback_on_step_end(self, i, int(t), {"x_t": image, "latents": output.prev_sample,
                                                      "pred_original_sample": x0_hat})
            image = output.prev_sample

        # 4. [-1, 1] -> [0, 1] and the requested type.
        image = (image / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            image = image.cpu().permute(0, 2, 3, 1).float().numpy()  # (B, H, W, 3)
        if output_type == "pil":
            image = self.numpy_to_pil(image)
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)


def check_sampling_args(num_inference_steps, guidance_scale, num_train_timesteps: int = 1000, **counts) -> None:
    """Raise a clear ``ValueError`` for settings that would crash or silently give noise."""
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, numbers.Integral) or \
            not 1 <= num_inference_steps <= num_train_timesteps:
        raise ValueError(f"num_inference_steps must be a whole number from 1 to {num_train_timesteps} "
                         f"(the training schedule's steps), got {num_inference_steps!r}")
    if not math.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def load_pipeline(path: str | Path, **kwargs) -> ConditionalDDPMPipeline:
    """``ConditionalDDPMPipeline.from_pretrained`` on a local folder, with clear errors."""
    expected = ("a folder written by save_pretrained "
                "(model_index.json, unet/, scheduler/ and, for conditional models, label_encoder/)")
    return load_folder(ConditionalDDPMPipeline, path, "pipeline", expected, **kwargs)


def load_folder(model_class, path: str | Path, what: str, expected: str, **kwargs):
    """``model_class.from_pretrained`` on a local folder, with errors that name the folder, ``what`` it should
    hold and the files ``expected``. The folder must have ``model_class.config_name`` (``model_index.json`` for
    a pipeline, ``config.json`` for a model)."""
    path = Path(path)
    if not (path / model_class.config_name).is_file():
        raise FileNotFoundError(f"no {what} at {path}: expected {expected}")
    try:
        diffusers_logging.disable_progress_bar()  # no "Loading pipeline components" bar in notebooks
        return model_class.from_pretrained(path, local_files_only=True, **kwargs)
    except Exception as error:  # diffusers raises many kinds; say which folder is broken
        raise OSError(f"could not load the {what} in {path}: its files are missing or corrupted ({error})") \
            from error
    finally:
        diffusers_logging.enable_progress_bar()


def to_numpy_images(images, value_range: tuple[float, float] = (0, 1)) -> np.ndarray:
    """Images -> ``(B, H, W, 3)`` floats in [0, 1], for figures and the evaluator.

    Takes a ``(B, 3, H, W)`` or ``(B, 1, H, W)`` tensor or array, a ``(B, H, W, 3)`` array, or a list of PIL
    images (the pipeline's default output). uint8 (PIL) is read as 0..255, anything else rescaled from ``value_range``.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().float().numpy()
    x = np.asarray(images)  # a list of PIL images -> (B, H, W, 3) uint8
    if x.ndim != 4 or (x.shape[-1] != 3 and x.shape[1] not in (1, 3)):
        raise ValueError(f"images must have shape (B, 3, H, W), (B, 1, H, W) or (B, H, W, 3), got {x.shape}")
    if x.shape[-1] != 3:  # channels first -> channels last
        x = x.transpose(0, 2, 3, 1)
    if x.shape[-1] == 1:  # grayscale -> RGB
        x = np.repeat(x, 3, axis=-1)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    lo, hi = value_range
    return np.clip((x.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)  # (B, H, W, 3)


def sample_trajectory(pipe: ConditionalDDPMPipeline, labels=None, num_frames: int = 8, **kwargs):
    """Sample, keeping ``num_frames`` steps; returns ``(frames, x0_frames, timesteps)`` for ``trajectory_strip``.

    Each frame is the ``(B, 3, H, W)`` x_t in [-1, 1] that the step at that timestep started from, each x0-frame
    the clean image the step predicted from it (x0-hat; ``None`` for samplers that do not report it, such as
    DPM-Solver++), as ``callback_on_step_end`` reports them.
    """
    steps = kwargs.get("num_inference_steps") or pipe.default_steps()
    keep = {round(i * (steps - 1) / max(1, num_frames - 1)) for i in range(num_frames)}
    frames, x0_frames, timesteps = [], [], []

    def record(pipe, i, t, tensors):
        if i in keep:
            x0_hat = tensors["pred_original_sample"]
            frames.append(tensors["x_t"].detach().cpu())
            x0_frames.append(None if x0_hat is None else x0_hat.detach().cpu())
            timesteps.append(t)

    pipe(*([] if labels is None else [labels]), callback_on_step_end=record, **kwargs)
    return frames, x0_frames, timesteps
