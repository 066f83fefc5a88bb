"""How the committed evaluation splits in ``condiff/data/splits/`` were drawn; a test checks they still match.
Also the other label files that ``python -m condiff results`` scores beside them (``other_label_files``).

    python -m condiff.tools.splits       # regenerate them (changes every score: only for a new split design)
"""
from __future__ import annotations

import json
from collections.abc import Collection
from itertools import combinations

import numpy as np

from ..data.iclevr import SPLITS_DIR
from ..data.labels import MAX_OBJECTS, NUM_LABELS, OBJECT_TO_INDEX, OBJECTS


def random_objects(
    rng: np.random.Generator,
    max_objects: int = MAX_OBJECTS,
    exclude: Collection[frozenset[str]] = (),
) -> list[str]:
    """1..max_objects distinct object names, never one of the ``exclude``d combinations.

    The objects of one scene, drawn as ``ProceduralScenes`` draws them (a uniform count, a uniform set,
    redrawn if excluded), from a numpy generator: the committed ``test`` split was drawn with it.
    """
    while True:
        n = int(rng.integers(1, max_objects + 1))
        names = [OBJECTS[i] for i in rng.choice(NUM_LABELS, size=n, replace=False)]
        if frozenset(names) not in exclude:
            return names


def make_splits(seed: int = 2024, num_cases: int = 64) -> dict[str, list[list[str]]]:
    """Draw the evaluation splits (how ``splits/*.json`` were made; a test checks they match).

    new_test: ``num_cases`` combinations of 2 or 3 objects, half of each, excluded from training.
    test: ``num_cases`` scenes of 1-3 objects whose combinations training does show.
    """
    rng = np.random.default_rng(seed)
    pairs = [list(c) for c in combinations(OBJECTS, 2)]
    triples = [list(c) for c in combinations(OBJECTS, 3)]
    new_test = [pairs[i] for i in rng.choice(len(pairs), num_cases // 2, replace=False)]
    new_test += [triples[i] for i in rng.choice(len(triples), num_cases - num_cases // 2, replace=False)]
    held_out = {frozenset(c) for c in new_test}
    test = [random_objects(rng, MAX_OBJECTS, exclude=held_out) for _ in range(num_cases)]
    single = [[name] for name in OBJECTS] * 2
    return {"test": test, "new_test": new_test, "single": single}


def other_label_files(files: int = 4, num_cases: int = 32, seed: int = 7) -> list[list[list[str]]]:
    """``files`` label files of ``num_cases`` scenes of 1 to 3 objects each, drawn as ``test``'s scenes were
    (``random_objects``) from a seed of their own, nothing excluded.

    Shipped models are chosen by their scores on the committed splits; these files check that a score holds
    on scenes nobody chose them by (the results table reports both).
    """
    rng = np.random.default_rng(seed)
    return [[random_objects(rng) for _ in range(num_cases)] for _ in range(files)]


if __name__ == "__main__":
    SPLITS_DIR.mkdir(exist_ok=True)
    for name, cases in make_splits().items():
        (SPLITS_DIR / f"{name}.json").write_text(json.dumps(cases) + "\n")
    (SPLITS_DIR / "objects.json").write_text(json.dumps(OBJECT_TO_INDEX, indent=1) + "\n")
