"""Label vocabulary and conversions: object names <-> multi-hot vectors <-> one-hot.

The vocabulary is i-CLEVR's: 8 colours x 3 shapes = 24 objects, indexed shape-major, so
"gray cube" is 0, "red cube" is 1, ..., "yellow cylinder" is 23 (the order of i-CLEVR's
``objects.json``). Notebook 2 explains one-hot labels, notebook 3 multi-hot ones.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

COLORS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
SHAPES = ("cube", "sphere", "cylinder")
OBJECTS = tuple(f"{color} {shape}" for shape in SHAPES for color in COLORS)  # 24 names
OBJECT_TO_INDEX = {name: i for i, name in enumerate(OBJECTS)}
NUM_LABELS = len(OBJECTS)
MAX_OBJECTS = 3
ECHO_CHARS = 200  # error messages quote at most this much of the input


def shorten(value, limit: int = ECHO_CHARS) -> str:
    """``repr``-like text of ``value`` for an error message, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def parse_objects(text: str) -> list[str]:
    """``"red cube, blue sphere"`` -> ``["red cube", "blue sphere"]`` (names are not checked here)."""
    return [" ".join(part.split()) for part in text.split(",") if part.strip()]


def names_to_multihot(
    names: Sequence[str] | str,
    vocabulary: Sequence[str] = OBJECTS,
    max_objects: int = MAX_OBJECTS,
) -> torch.Tensor:
    """One scene's object names -> a float multi-hot vector of shape ``(len(vocabulary),)``.

    >>> names_to_multihot(["red cube", "blue sphere"]).nonzero().flatten().tolist()
    [1, 10]
    """
    if isinstance(names, str):
        names = parse_objects(names)
    names = list(names)
    if not 1 <= len(names) <= max_objects:
        allowed = "exactly 1 object" if max_objects == 1 else f"1 to {max_objects} objects"
        raise ValueError(f"a scene needs {allowed}, got {len(names)}: {shorten(names)}")
    index = {name: i for i, name in enumerate(vocabulary)}
    vector = torch.zeros(len(vocabulary))
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"an object must be a name like 'red cube', got {shorten(name)} in {shorten(names)}")
        if name not in index:
            raise ValueError(
                f"unknown label {shorten(repr(name))}; allowed labels are: {', '.join(vocabulary)}"
            )
        if vector[index[name]]:
            raise ValueError(f"label {name!r} appears twice in {shorten(names)}; objects must be distinct")
        vector[index[name]] = 1.0
    return vector


def index_to_onehot(index: int | torch.Tensor, num_labels: int = NUM_LABELS) -> torch.Tensor:
    """Class index (or a batch of them) -> float one-hot of shape ``(..., num_labels)``."""
    index = torch.as_tensor(index)
    if index.numel() and (index.min() < 0 or index.max() >= num_labels):
        raise ValueError(f"class index out of range: {index.tolist()}; allowed 0..{num_labels - 1}")
    return torch.nn.functional.one_hot(index.long(), num_labels).float()


def check_label_tensor(labels: torch.Tensor, num_labels: int = NUM_LABELS) -> torch.Tensor:
    """Validate a batch of label vectors: shape ``(B, num_labels)``, entries 0 or 1."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a tensor, got {type(labels).__name__}")
    if labels.ndim != 2 or labels.shape[1] != num_labels:
        raise ValueError(
            f"label tensor must have shape (batch, {num_labels}), got {tuple(labels.shape)}"
        )
    message = "label vectors must contain only 0 and 1 (multi-hot)"
    valid = ((labels == 0) | (labels == 1)).all()
    if labels.device.type != "cpu":
        torch._assert_async(valid, message)  # checked on the device: no wait for it in every training step
    elif not valid:
        raise ValueError(message)
    return labels.float()


def to_label_batch(
    labels: str | Sequence[str | Sequence[str]] | torch.Tensor,
    vocabulary: Sequence[str] = OBJECTS,
    max_objects: int = MAX_OBJECTS,
) -> torch.Tensor:
    """Anything a user may pass as labels -> a ``(B, len(vocabulary))`` float tensor.

    - a tensor of shape ``(B, len(vocabulary))`` with 0/1 entries;
    - a string, one scene: ``"red cube, blue sphere"``;
    - a list with one entry per image, each a string or a list of names:
      ``["red cube", ["blue sphere", "gray cylinder"]]``.
    """
    if isinstance(labels, torch.Tensor):
        return check_label_tensor(labels, len(vocabulary))
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, Iterable) or len(labels) == 0:
        raise ValueError(
            "labels must be a non-empty list of scenes (a string like 'red cube, blue sphere' "
            "or a list of object names per image) or a (batch, num_labels) tensor"
        )
    return torch.stack([names_to_multihot(scene, vocabulary, max_objects) for scene in labels])
