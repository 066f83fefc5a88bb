"""condiff: conditional diffusion models with PyTorch and diffusers, in five notebooks.

    data/       labels, procedural i-CLEVR scenes, the i-CLEVR format and its loader
    models      the four denoisers and their label encoders          (notebooks 1-4)
    pipeline    ConditionalDDPMPipeline, schedulers, guidance         (notebooks 1, 3)
    recipes     one training recipe per notebook
    train       the Accelerate training loop
    evaluate    the scene classifier and i-CLEVR's top-k accuracy     (notebook 3)
    plotting    every figure of the notebooks
    runinfo     hardware, commit and digests for the records
    runfolder   a training run's folder: shipped weights refused, a lock, kill-proof writes
    tools/      the command line and the maintainers' tools (results, cards, blog); the core never imports them
"""
from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"
REPO_URL = "https://github.com/condiff/condiff"  # the Colab badges and clone, the README and the blog use it

# The shipped weights: ``weights/`` beside this package in a clone, or $CONDIFF_WEIGHTS.
WEIGHTS_DIR = Path(os.environ.get("CONDIFF_WEIGHTS", Path(__file__).resolve().parent.parent / "weights"))

from .models import LabelEncoder  # noqa: E402  (diffusers finds a saved pipeline's encoder here)
from .pipeline import ConditionalDDPMPipeline  # noqa: E402

__all__ = ["REPO_URL", "WEIGHTS_DIR", "LabelEncoder", "ConditionalDDPMPipeline"]
