"""Shared pytest fixtures. Keep each group in its own marked section."""
from __future__ import annotations

import pytest

# ---------------------------------------------------------------------------------------------
# Training and CLI tests (test_train.py, test_cli.py): a tiny pipeline and an untrained evaluator
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A saved, untrained 16x16 time_sum ``ConditionalDDPMPipeline`` (tiny UNet): loads in well under a second."""
    import torch
    from diffusers import DDPMScheduler

    from condiff.models import build_models
    from condiff.pipeline import ConditionalDDPMPipeline

    torch.manual_seed(0)
    unet, encoder = build_models("time_sum", image_size=16, block_out_channels=(8, 16))
    path = tmp_path_factory.mktemp("tiny_pipeline")
    ConditionalDDPMPipeline(unet=unet, scheduler=DDPMScheduler(), label_encoder=encoder).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def evaluator_dir(tmp_path_factory):
    """An untrained ``SceneClassifier`` saved like ``weights/evaluator``, so tests never need the shipped weights."""
    import torch

    from condiff.evaluate import SceneClassifier

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("evaluator")
    SceneClassifier().save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------
# (end of the training and CLI section)
# ---------------------------------------------------------------------------------------------
