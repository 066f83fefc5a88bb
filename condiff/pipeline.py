"""``ConditionalDDPMPipeline``: one diffusers pipeline for every conditioning mode.

It follows ``diffusers.DDPMPipeline`` (same ``__call__`` loop, ``randn_tensor``,
``progress_bar``, ``ImagePipelineOutput``) and adds labels and classifier-free guidance:

    pipe = load_pipeline("weights/time_sum")
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    images = pipe(["red cube, blue sphere"], guidance_scale=2.0, num_inference_steps=50).images

Each pipeline stores the guidance weight (and sampler) it samples best with in its config, so
``model_index.json`` carries it: ``pipe(labels)`` without ``guidance_scale`` uses
``pipe.config.guidance_scale`` (1.0 when a folder has none).

Notebook 1 writes the same loop by hand; notebook 3 explains guidance.
"""
from __future__ import annotations

import json
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
from .models import LabelEncoder, predict_noise

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
    model, which then takes ``batch_size`` instead of labels). Settings saved in
    ``model_index.json`` beside them (``pipe.config.<name>``): ``guidance_scale``, the default
    guidance weight; ``sampler`` (``ddpm``, ``ddim``, ``dpm++`` or ``None``) and
    ``num_inference_steps``, the sampler it was scored with (``use_stored_sampler`` installs it).
    """

    model_cpu_offload_seq = "label_encoder->unet"
    _optional_components = ["label_encoder"]

    def __init__(self, unet, scheduler, label_encoder: LabelEncoder | None = None, guidance_scale: float = 1.0,
                 sampler: str | None = None, num_inference_steps: int | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, label_encoder=label_encoder)
        self.set_stored_sampling(guidance_scale, sampler, num_inference_steps)

    def set_stored_sampling(self, guidance_scale: float = 1.0, sampler: str | None = None,
                            num_inference_steps: int | None = None) -> None:
        """Store the default guidance weight and sampler in the config (``save_pretrained`` writes them)."""
        self.register_to_config(**_sampling_settings(guidance_scale, sampler, num_inference_steps))

    def use_stored_sampler(self) -> ConditionalDDPMPipeline:
        """Swap in the stored sampler (``config.sampler``), if any; returns the pipeline."""
        if self.config.get("sampler"):
            self.scheduler = make_scheduler(self.config.sampler, self.scheduler.config)
        return self

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
        callback_on_step_end: Callable[[int, int, torch.Tensor], None] | None = None,
    ) -> ImagePipelineOutput | tuple:
        r"""
        Args:
            labels: one entry per image: ``"red cube, blue sphere"`` or ``["red cube", "blue sphere"]``,
                or a multi-hot tensor ``(B, num_labels)``; all zeros is the null label.
            batch_size: number of images for an unconditional model (ignored when labels are given).
            num_images_per_label: images drawn for each entry of ``labels``.
            guidance_scale: classifier-free guidance weight ``w`` in
                ``eps = eps(null) + w * (eps(label) - eps(null))``; 1 is plain conditional sampling
                (one UNet call per step), 0 ignores the labels. Default: the stored
                ``config.guidance_scale`` (1.0 for folders that store none).
            num_inference_steps: denoising steps (1000 for DDPM, 25-50 for DDIM or DPM-Solver++).
                Default: ``default_steps()``.
            output_type: ``"pil"``, ``"np"`` (``(B, H, W, 3)`` in [0, 1]) or ``"pt"`` (``(B, 3, H, W)``).
            callback_on_step_end: called as ``f(step_index, timestep, sample)`` after every step.
        """
        if guidance_scale is None:
            guidance_scale = self.config.get("guidance_scale", 1.0)
        if num_inference_steps is None:
            num_inference_steps = self.default_steps()

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
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = self.scheduler.scale_model_input(image, t)
            if use_guidance:  # one batched call for (null, label), then mix the two predictions
                both = torch.cat([torch.zeros_like(cond), cond])
                eps_null, eps_cond = predict_noise(
                    self.unet, self.label_encoder, torch.cat([model_input] * 2), t, both
                ).chunk(2)
                noise_pred = eps_null + guidance_scale * (eps_cond - eps_null)
            else:
                noise_pred = predict_noise(self.unet, self.label_encoder, model_input, t, cond)
            image = self.scheduler.step(noise_pred, t, image, generator=generator).prev_sample
            if callback_on_step_end is not None:
                callback_on_step_end(i, int(t), image)

        # 4. [-1, 1] -> [0, 1] and the requested type.
        image = (image / 2 + 0.5).clamp(0, 1)
        if output_type == "pt":
            output = image
        else:
            output = image.cpu().permute(0, 2, 3, 1).float().numpy()
            if output_type == "pil":
                output = self.numpy_to_pil(output)
            elif output_type != "np":
                raise ValueError(f"unknown output_type {output_type!r}; allowed: pil, np, pt")
        if not return_dict:
            return (output,)
        return ImagePipelineOutput(images=output)


def _sampling_settings(guidance_scale: float, sampler: str | None, num_inference_steps: int | None) -> dict:
    """The stored-sampling keys of ``model_index.json``, checked."""
    if not 0 <= float(guidance_scale) <= 50:
        raise ValueError(f"guidance_scale must be between 0 and 50, got {guidance_scale}")
    if sampler is not None and sampler not in SCHEDULERS:
        raise ValueError(f"unknown sampler {sampler!r}; allowed: {', '.join(SCHEDULERS)}")
    if num_inference_steps is not None and int(num_inference_steps) < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
    return {"guidance_scale": float(guidance_scale), "sampler": sampler,
            "num_inference_steps": None if num_inference_steps is None else int(num_inference_steps)}


def store_sampling(path: str | Path, guidance_scale: float, sampler: str | None = None,
                   num_inference_steps: int | None = None) -> dict:
    """Write the default guidance (and sampler) into a saved pipeline's ``model_index.json``; nothing else changes.

    The same keys ``ConditionalDDPMPipeline.set_stored_sampling`` sets, in diffusers' format
    (sorted keys, indent 2), so ``from_pretrained`` reads them back. Returns the new index.
    """
    index_path = Path(path) / "model_index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"no pipeline at {path}: expected model_index.json")
    index = json.loads(index_path.read_text())
    if index.get("_class_name") != ConditionalDDPMPipeline.__name__:
        raise ValueError(f"{index_path} is a {index.get('_class_name')}, not a {ConditionalDDPMPipeline.__name__}")
    index.update(_sampling_settings(guidance_scale, sampler, num_inference_steps))
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


def load_pipeline(path: str | Path, **kwargs) -> ConditionalDDPMPipeline:
    """``ConditionalDDPMPipeline.from_pretrained`` on a local folder, with clear errors."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"no pipeline at {path}: expected a folder written by save_pretrained "
            "(model_index.json, unet/, scheduler/ and, for conditional models, label_encoder/)"
        )
    try:
        diffusers_logging.disable_progress_bar()  # no "Loading pipeline components" bar in notebooks
        return ConditionalDDPMPipeline.from_pretrained(path, local_files_only=True, **kwargs)
    except Exception as error:  # diffusers raises many kinds; say which folder is broken
        raise OSError(f"could not load the pipeline in {path}: its files are missing or corrupted ({error})") \
            from error
    finally:
        diffusers_logging.enable_progress_bar()


def to_numpy_images(images) -> np.ndarray:
    """PIL images, a ``(B, H, W, 3)`` array or a ``(B, 3, H, W)`` tensor -> ``(B, H, W, 3)`` floats."""
    if isinstance(images, torch.Tensor):
        return images.detach().cpu().permute(0, 2, 3, 1).float().numpy()
    if isinstance(images, np.ndarray):
        return images
    return np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])


def sample_trajectory(pipe: ConditionalDDPMPipeline, labels=None, num_frames: int = 8, **kwargs):
    """Sample, keeping ``num_frames`` intermediate images; returns ``(frames, timesteps)``.

    Each frame is the ``(B, 3, H, W)`` sample in [-1, 1] after a step, for ``plotting.trajectory_strip``.
    Notebook 1 shows the ``callback_on_step_end`` this is built on.
    """
    steps = kwargs.get("num_inference_steps") or pipe.default_steps()
    keep = {round(i * (steps - 1) / max(1, num_frames - 1)) for i in range(num_frames)}
    frames, timesteps = [], []

    def record(i, t, sample):
        if i in keep:
            frames.append(sample.detach().cpu())
            timesteps.append(t)

    if labels is None:
        pipe(callback_on_step_end=record, **kwargs)
    else:
        pipe(labels, callback_on_step_end=record, **kwargs)
    return frames, timesteps
