"""i-CLEVR's on-disk format, the committed evaluation splits, and one loader for both.

An i-CLEVR folder holds:

    objects.json     {"gray cube": 0, ..., "yellow cylinder": 23}
    train.json       {"CLEVR_train_000000_0.png": ["red cube", "blue sphere"], ...}
    test.json        [["gray cube"], ["red sphere", "cyan cylinder"], ...]   (seen combinations)
    new_test.json    [...]                                                      (unseen combinations)
    images/          the PNGs named in train.json

``ICLEVRDataset`` reads such a folder's training images, the real i-CLEVR one included (resized to
the model's size), so a reader who has the real data passes it to ``train(data=...)`` in place of the
procedural scenes; ``load_split(folder / "new_test.json")`` reads its test labels. The splits every
score in this repository uses are committed in ``condiff/data/splits/`` (drawn by ``condiff.tools.splits``):
``test`` holds combinations seen in training, ``new_test`` combinations that training never shows
(``ProceduralScenes(exclude=...)`` leaves them out), and ``single`` each of the 24 objects alone, twice
(notebook 2).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .labels import OBJECTS, names_to_multihot, shorten

SPLITS_DIR = Path(__file__).parent / "splits"
SPLITS = ("test", "new_test", "single")


# ---------------------------------------------------------------------------------------------
# The committed splits
# ---------------------------------------------------------------------------------------------

def load_split(split: str | Path) -> list[list[str]]:
    """A JSON file in ``test.json``'s format, or a committed split by name (``test``, ``new_test``, ``single``).

    A ``Path`` is always a file. A string is read as a file when one exists at that path (so a file
    named ``test`` is never shadowed), else as a split name.
    """
    path = Path(split)
    if not isinstance(split, Path) and not path.is_file() and split in SPLITS:
        path = SPLITS_DIR / f"{split}.json"
    expected = ('a JSON list of object lists (one list of 1 to 3 names per scene), like '
                '[["red cube"], ["blue sphere", "gray cylinder"]]')
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder; a labels file holds {expected}")
    missing = f"no split file {shorten(str(path))}; use one of {', '.join(SPLITS)} or {expected}"
    cases = read_json(path, expected, missing)
    if not isinstance(cases, list):
        raise ValueError(f"{path} must hold {expected}; it holds a JSON {type(cases).__name__}")
    if not cases:
        raise ValueError(f"{path} holds no scenes; expected {expected}")
    for i, case in enumerate(cases):
        if not isinstance(case, list) or not all(isinstance(name, str) for name in case):
            raise ValueError(f"{path} must hold {expected}; scene {i} is {shorten(json.dumps(case))}")
        try:
            names_to_multihot(case)  # unknown names, duplicates, too many or no objects
        except ValueError as error:
            raise ValueError(f"{path}: scene {i}: {error}") from None
    return cases


def read_json(path: Path, expected: str, missing: str | None = None):
    """The JSON in ``path``; a missing or unreadable file raises an error that says what was ``expected``."""
    if not path.is_file():
        raise FileNotFoundError(missing or f"missing {path.name} in {path.parent}; expected {expected}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at position "
                         f"{error.start}); expected UTF-8 JSON: {expected}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); expected {expected}") from None
    except RecursionError:
        raise ValueError(f"{path} nests lists or objects too deep to read; expected {expected}") from None


def held_out_combinations() -> set[frozenset[str]]:
    """The new_test combinations: what training must never show."""
    return {frozenset(c) for c in load_split("new_test")}


# ---------------------------------------------------------------------------------------------
# The folder format
# ---------------------------------------------------------------------------------------------

FOLDER = "an i-CLEVR folder: objects.json, train.json, test.json, new_test.json and the training PNGs"


class ICLEVRDataset(torch.utils.data.Dataset):
    """The training images and multi-hot labels of an i-CLEVR folder (its ``train.json``).

    Item ``i`` is ``(image (3, size, size) in [-1, 1], label (24,))``. The real i-CLEVR keeps its PNGs next to the JSON
    files in a folder named ``iclevr``: pass ``image_dir`` if yours is elsewhere. All training
    images are decoded once, resized to ``size`` and kept in memory (18k i-CLEVR images at 32x32:
    55 MB), and ``batch`` draws batches seeded by ``(seed, step, rank)`` like ``ProceduralScenes.batch``.
    """

    def __init__(self, root: str | Path, size: int = 32, image_dir: str | Path | None = None, seed: int = 0):
        self.root, self.size, self.seed = Path(root), size, seed
        objects = read_json(self.root / "objects.json", FOLDER)
        if sorted(objects, key=objects.get) != list(OBJECTS):
            raise ValueError(f"{self.root / 'objects.json'} does not hold i-CLEVR's 24 objects in their order")
        self.num_labels = len(OBJECTS)
        data = read_json(self.root / "train.json", FOLDER)
        self.files, self.cases = list(data), list(data.values())
        folder = Path(image_dir) if image_dir else next(
            (self.root / d for d in ("images", "iclevr") if (self.root / d).is_dir()), self.root / "images"
        )
        self.images = torch.stack([self._load_image(folder / f) for f in self.files])  # (N, 3, size, size)
        self.labels = torch.stack([names_to_multihot(c) for c in self.cases])  # (N, 24)

    def _load_image(self, path: Path) -> torch.Tensor:
        if not path.is_file():
            raise FileNotFoundError(f"image {path.name} listed in train.json is missing from {path.parent}")
        image = Image.open(path).convert("RGB").resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 255.0 * 2 - 1  # (3, size, size)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def batch(self, step: int, batch_size: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.random.default_rng([self.seed, step, rank]).integers(0, len(self), batch_size)
        return self.images[index], self.labels[index]

