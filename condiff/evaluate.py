"""Scoring generated scenes: a classifier that also counts, i-CLEVR's top-k accuracy and exact-scene accuracy.

The classifier (``weights/evaluator/``) is a small CNN trained on fresh procedural scenes, duplicates
and up to 5 objects included, with ``python -m condiff train-evaluator``. It has two heads: presence
logits ``(B, 24)`` ("is this object anywhere?", what ``classify`` returns) and a count per object,
0, 1, 2 or 3-or-more (what ``count_objects`` returns).

Two metrics, defined here once:

- **top-k accuracy** (i-CLEVR's, from the presence logits): for an image asked to contain k objects,
  take the k most likely labels and count how many were asked for; accuracy = hits / objects asked.
  Extra and repeated objects go unseen.
- **exact-scene accuracy**: the share of images that hold each asked object exactly once and
  nothing else, by the count head (``exact_scenes``). A duplicate, an extra, a missing or a wrong
  object fails the image.

``evaluate(pipe, "new_test")`` generates the split's scenes and scores them. Notebook 3 walks through it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.utils import logging as diffusers_logging
from torch import nn
from tqdm import tqdm

from . import WEIGHTS_DIR
from .data.iclevr import load_split, read_json
from .data.labels import NUM_LABELS, OBJECTS, names_to_multihot
from .pipeline import check_sampling_args, load_folder, make_scheduler, to_numpy_images

# ---------------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------------

class SceneClassifier(ModelMixin, ConfigMixin):
    """Images ``(B, 3, H, W)`` in [-1, 1] -> presence logits ``(B, num_labels)`` (``forward``) and count
    logits ``(B, num_labels, max_count + 1)`` (``heads``), over three conv stages shared by both.

    Presence max-pools the last feature map ("is this object anywhere?"); the count head pools a
    per-position projection of that map by its mean (which grows with the number of objects) and max, and
    classifies each object's count as 0, 1, ..., ``max_count`` (meaning ``max_count`` or more)."""

    @register_to_config
    def __init__(self, num_labels: int = NUM_LABELS, width: int = 32, image_size: int = 32, max_count: int = 3):
        super().__init__()

        def stage(c_in, c_out):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(stage(3, width), stage(width, 2 * width), stage(2 * width, 4 * width))  # 32 -> 4
        self.head = nn.Linear(4 * width, num_labels)
        self.count_map = nn.Sequential(nn.Conv2d(4 * width, 4 * width, 1), nn.SiLU())
        self.count_head = nn.Linear(8 * width, num_labels * (max_count + 1))

    def heads(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Presence logits ``(B, L)`` and count logits ``(B, L, max_count + 1)`` from one pass."""
        features = self.features(images)  # (B, 4w, H/8, W/8)
        presence = self.head(features.amax(dim=(2, 3)))  # max-pool: "is this object anywhere?"
        m = self.count_map(features)
        counts = self.count_head(torch.cat([m.mean(dim=(2, 3)), m.amax(dim=(2, 3))], dim=1))
        return presence, counts.view(len(images), self.config.num_labels, self.config.max_count + 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads(images)[0]


def load_evaluator(path: str | Path | None = None) -> SceneClassifier:
    """The scene classifier in ``path`` (default ``weights/evaluator``), with clear errors."""
    path = Path(path) if path is not None else WEIGHTS_DIR / "evaluator"
    if (path / "config.json").is_file():  # another model's folder would fail as "corrupted": say what it holds
        config = read_json(path / "config.json", "a model's config.json: a JSON object")
        class_name = config.get("_class_name") if isinstance(config, dict) else f"JSON {type(config).__name__}"
        if class_name != SceneClassifier.__name__:
            raise ValueError(f"{path} holds a {class_name}, not an evaluator (a SceneClassifier, like "
                             "weights/evaluator); give --evaluator the classifier's folder, not a pipeline's")
    expected = ("config.json and diffusion_pytorch_model.safetensors (the repository ships them in "
                "weights/evaluator; `python -m condiff train-evaluator` remakes them)")
    return load_folder(SceneClassifier, path, "evaluator", expected).eval()


# ---------------------------------------------------------------------------------------------
# The metric
# ---------------------------------------------------------------------------------------------

def topk_mask(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image, 1 on its k top-scored labels, k = number of objects asked: ``(B, L)``.

    i-CLEVR's accuracy is ``(topk_mask(logits, labels) * labels).sum() / labels.sum()``: hits / objects asked.
    """
    mask = torch.zeros_like(labels)
    for i, (scores, target) in enumerate(zip(logits, labels)):
        mask[i, scores.topk(int(target.sum())).indices] = 1
    return mask


def exact_scenes(counts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image, whether it holds each asked object exactly once and nothing else: ``(B,)`` bool.

    ``counts`` ``(B, L)``: objects found per label (``count_objects``); ``labels`` ``(B, L)``: multi-hot asked."""
    return (counts == labels).all(dim=1)


def exact_scene_accuracy(counts: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of images that hold each asked object exactly once and nothing else (``exact_scenes``)."""
    return float(exact_scenes(counts, labels).float().mean())


def _evaluator_input(images, evaluator: SceneClassifier) -> torch.Tensor:
    x = torch.from_numpy(to_numpy_images(images)).permute(0, 3, 1, 2) * 2 - 1  # (B, 3, H, W) in [-1, 1]
    size = evaluator.config.image_size
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.float()


@torch.no_grad()
def judge(images, evaluator: SceneClassifier | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Presence logits ``(B, 24)`` and object counts ``(B, 24)`` (0 to 3, 3 meaning 3 or more) for images
    (PIL, ``(B, H, W, 3)`` array or ``(B, 3, H, W)`` tensor in [0, 1]), from one pass of the evaluator."""
    evaluator = evaluator if evaluator is not None else load_evaluator()
    presence, counts = evaluator.heads(_evaluator_input(images, evaluator))
    return presence, counts.argmax(-1)


def classify(images, evaluator: SceneClassifier | None = None) -> torch.Tensor:
    """Presence logits ``(B, 24)`` for images (PIL, ``(B, H, W, 3)`` array or ``(B, 3, H, W)`` tensor in [0, 1])."""
    return judge(images, evaluator)[0]


def count_objects(images, evaluator: SceneClassifier | None = None) -> torch.Tensor:
    """How many of each object the images hold ``(B, 24)``: 0, 1, 2 or 3 (3 or more); images as ``classify``."""
    return judge(images, evaluator)[1]


def scene_errors(counts: torch.Tensor, case: list[str]) -> dict[str, list[str]]:
    """What one image gets wrong, from its counts ``(24,)`` (``count_objects``) and the asked ``case``: asked
    objects it lacks (``missing``), objects nobody asked for (``extra``) and asked ones it holds more than
    once (``repeated``, as ``"red cube x2"``; x3 means 3 or more). All three empty: an exact scene.
    ``swapped`` reads the first two together: a missing object beside an extra one of its colour or its shape
    (``"blue sphere as blue cube"``), the colour bound to the wrong shape or the reverse (a binding error)."""
    found = {OBJECTS[j]: int(counts[j]) for j in counts.nonzero().flatten().tolist()}
    missing, extra = sorted(set(case) - set(found)), sorted(set(found) - set(case))
    alike = {m: [e for e in extra if set(m.split()) & set(e.split())] for m in missing}  # same colour or shape
    return {"missing": missing, "extra": extra,
            "repeated": [f"{name} x{n}" for name, n in sorted(found.items()) if name in case and n > 1],
            "swapped": [f"{m} as {alike[m][0]}" for m in missing if alike[m]]}


def score_logits(logits: torch.Tensor, cases: list[list[str]], counts: torch.Tensor) -> dict:
    """Top-k accuracy (from presence ``logits`` ``(B, 24)``), exact-scene accuracy (from ``counts`` ``(B, 24)``),
    top-k per label and confidence for the asked ``cases``."""
    labels = torch.stack([names_to_multihot(c) for c in cases])  # (B, 24)
    if logits.shape != labels.shape or counts.shape != labels.shape:
        raise ValueError(f"{len(cases)} cases need logits and counts of shape {tuple(labels.shape)}, got "
                         f"{tuple(logits.shape)} and {tuple(counts.shape)}")
    asked, found = labels.sum(0), (topk_mask(logits, labels) * labels).sum(0)
    per_label = {OBJECTS[i]: float(found[i] / asked[i]) for i in range(len(OBJECTS)) if asked[i] > 0}
    return {
        "accuracy": float(found.sum() / asked.sum()),
        "exact_scene_accuracy": exact_scene_accuracy(counts, labels),
        "per_label": per_label,
        "confidence": float(torch.sigmoid(logits).max(1).values.mean()),
    }


def evaluate(
    pipeline,
    split: str | Path = "test",
    guidance_scale: float | None = None,
    scheduler: str | None = None,
    num_inference_steps: int | None = None,
    seed: int = 0,
    evaluator: SceneClassifier | None = None,
    progress: bool = False,
    limit: int | None = None,
    batch_size: int = 64,
    keep_images: int = 256,
) -> dict:
    """Generate one image per case of ``split`` and score it; returns ``accuracy`` (top-k),
    ``exact_scene_accuracy``, per-label accuracy, images and timings.

    ``scheduler`` (``ddpm``, ``ddim``, ``dpm++``) samples with that sampler instead of the pipeline's;
    ``num_inference_steps`` and ``guidance_scale`` default to the pipeline's (``default_steps``, the
    stored guidance). ``limit`` scores only the split's first cases (quick runs). The caller's pipeline
    is left as it was. Scenes are generated and scored ``batch_size`` at a time (one random stream
    over all batches, seeded by ``seed``), so memory does not grow with the split;
    ``result["images"]`` keeps the first ``keep_images`` images ``(N, H, W, 3)`` for plots.
    """
    cases = load_split(split)[:limit]
    if pipeline.label_encoder is None:
        raise ValueError("evaluate scores how well images match their labels; this pipeline is unconditional "
                         "(it takes no labels)")
    # The same modules in a pipeline of its own, with a fresh scheduler: the caller's stays as it was.
    config = pipeline.scheduler.config
    fresh = make_scheduler(scheduler, config) if scheduler else type(pipeline.scheduler).from_config(config)
    # The same modules and stored settings. The unet is passed by name: from_pipe carries over only the
    # components whose type matches __init__'s annotation, and the unet's is either of two UNet classes.
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # from_pipe casts every model to float32, which diffusers warns about
    try:
        pipe = type(pipeline).from_pipe(pipeline, unet=pipeline.unet, scheduler=fresh)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    steps = pipe.default_steps() if num_inference_steps is None else num_inference_steps
    guidance_scale = pipe.config.guidance_scale if guidance_scale is None else guidance_scale
    check_sampling_args(steps, guidance_scale, config.num_train_timesteps, batch_size=batch_size)
    pipe.encode_labels(cases)  # every scene valid for this model before any sampling
    evaluator = evaluator if evaluator is not None else load_evaluator()
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    logits, counts, kept, seconds = [], [], [], 0.0  # (b, 24) twice per batch; the first keep_images images
    for first in tqdm(range(0, len(cases), batch_size), desc="batches", unit="batch", disable=not progress):
        batch = cases[first:first + batch_size]
        start = time.perf_counter()
        images = pipe(batch, guidance_scale=guidance_scale, num_inference_steps=steps, generator=generator,
                      output_type="np").images  # (b, H, W, 3) in [0, 1]
        seconds += time.perf_counter() - start
        presence, found = judge(images, evaluator)
        logits.append(presence)
        counts.append(found)
        kept.append(images[:max(0, keep_images - first)])  # (b', H, W, 3): empty once keep_images are kept
    result = score_logits(torch.cat(logits), cases, torch.cat(counts))
    result.update(images=np.concatenate(kept), cases=cases, seconds=seconds, scheduler=type(fresh).__name__,
                  steps=steps, guidance_scale=guidance_scale)
    return result
