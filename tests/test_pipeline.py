import json
import socket

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from condiff.data.labels import to_label_batch
from condiff.models import build_models, predict_noise
from condiff.pipeline import ConditionalDDPMPipeline, load_pipeline, make_scheduler

CASES = ["red cube", "blue sphere, gray cylinder"]


def make_pipe(mode="time_sum", beta_schedule="linear"):
    torch.manual_seed(0)
    unet, encoder = build_models(mode, image_size=16, block_out_channels=(8, 16))
    with torch.no_grad():  # untrained UNets predict exactly zero; make them predict something
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pipe = ConditionalDDPMPipeline(unet=unet, scheduler=DDPMScheduler(beta_schedule=beta_schedule),
                                   label_encoder=encoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, labels=CASES, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", 4)
    if pipe.label_encoder is None:
        return pipe(batch_size=2, generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs).images
    return pipe(labels, generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs).images


@pytest.mark.parametrize("mode", ["unconditional", "cross_attention", "time_sum", "concat"])
def test_save_load_round_trip_gives_the_same_images(tmp_path, mode):
    pipe = make_pipe(mode)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "ConditionalDDPMPipeline"
    loaded = load_pipeline(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    # Equal up to float rounding: with several threads the reloaded tensors' memory alignment can
    # change the order of a few sums. A wrong or missing weight would differ by far more.
    assert np.allclose(sample(pipe), sample(loaded), atol=1e-5)
    assert sample(pipe).shape == (2, 16, 16, 3)
    if mode != "unconditional":
        assert loaded.label_encoder.config.mode == mode
        assert list(tmp_path.glob("label_encoder/*.safetensors")) or mode == "concat"


def test_same_seed_same_images_other_seed_other_images():
    pipe = make_pipe()
    assert np.array_equal(sample(pipe, seed=1), sample(pipe, seed=1))
    assert not np.array_equal(sample(pipe, seed=1), sample(pipe, seed=2))


def test_guidance_scale_one_is_plain_conditional_sampling():
    """The pipeline at w=1 equals the textbook loop written by hand (as notebook 1 does)."""
    pipe = make_pipe()
    images = pipe(CASES, guidance_scale=1.0, num_inference_steps=5, generator=torch.Generator().manual_seed(0),
                  output_type="pt").images
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=g)
    labels = to_label_batch(CASES)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = predict_noise(pipe.unet, pipe.label_encoder, x, t, labels)
            x = scheduler.step(eps, t, x, generator=g).prev_sample
    assert torch.allclose(images, (x / 2 + 0.5).clamp(0, 1), atol=1e-6)
    guided = pipe(CASES, guidance_scale=3.0, num_inference_steps=5, generator=torch.Generator().manual_seed(0),
                  output_type="pt").images
    assert not torch.allclose(images, guided)


@pytest.mark.parametrize("name, cls", [("ddim", DDIMScheduler), ("dpm++", DPMSolverMultistepScheduler)])
def test_scheduler_swap_keeps_the_noise_schedule(name, cls):
    pipe = make_pipe(beta_schedule="squaredcos_cap_v2")
    pipe.scheduler = make_scheduler(name, pipe.scheduler.config)
    assert isinstance(pipe.scheduler, cls)
    assert pipe.scheduler.config.beta_schedule == "squaredcos_cap_v2"
    cosine = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    assert torch.allclose(pipe.scheduler.alphas_cumprod, cosine.alphas_cumprod)
    images = sample(pipe, num_inference_steps=3)
    assert images.shape == (2, 16, 16, 3) and np.isfinite(images).all()
    with pytest.raises(ValueError, match="unknown scheduler 'euler'; allowed: ddpm, ddim, dpm\\+\\+"):
        make_scheduler("euler", pipe.scheduler.config)


def test_outputs_and_bad_inputs():
    pipe = make_pipe()
    assert len(pipe(CASES, num_inference_steps=2).images) == 2  # PIL by default
    assert pipe(CASES, num_inference_steps=2, num_images_per_label=3, output_type="pt").images.shape == (6, 3, 16, 16)
    with pytest.raises(ValueError, match="unknown label 'pink cube'"):
        pipe(["pink cube"], num_inference_steps=2)
    with pytest.raises(ValueError, match="pass labels"):
        pipe(num_inference_steps=2)
    with pytest.raises(ValueError, match=r"shape \(batch, 24\)"):
        pipe(torch.zeros(2, 7), num_inference_steps=2)
    with pytest.raises(ValueError, match="output_type 'jpeg'; allowed: pil, np, pt"):  # before any step
        pipe(CASES, num_inference_steps=2, output_type="jpeg", callback_on_step_end=lambda *_: pytest.fail("sampled"))
    with pytest.raises(ValueError, match="unconditional"):
        make_pipe("unconditional")(CASES, num_inference_steps=2)


def test_missing_or_corrupted_weights_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pipeline at"):
        load_pipeline(tmp_path / "nothing")
    make_pipe().save_pretrained(tmp_path)
    weights = next((tmp_path / "unet").glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(OSError, match="missing or corrupted"):
        load_pipeline(tmp_path)


def test_loading_and_sampling_make_no_network_call(tmp_path, monkeypatch):
    make_pipe().save_pretrained(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    pipe = load_pipeline(tmp_path)
    pipe.set_progress_bar_config(disable=True)
    assert sample(pipe).shape == (2, 16, 16, 3)


def test_sample_trajectory_keeps_the_requested_frames_and_their_x0_hat():
    from condiff.pipeline import sample_trajectory

    pipe = make_pipe()
    frames, x0_frames, timesteps = sample_trajectory(pipe, CASES, num_frames=4, num_inference_steps=10,
                                                     generator=torch.Generator().manual_seed(0))
    assert len(frames) == len(x0_frames) == 4 and frames[0].shape == x0_frames[0].shape == (2, 3, 16, 16)
    assert timesteps == sorted(timesteps, reverse=True) and timesteps[-1] == pipe.scheduler.timesteps[-1]
    final = pipe(CASES, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert torch.allclose((x0_frames[-1] / 2 + 0.5).clamp(0, 1), final)  # the last step lands on its x0-hat
    assert not torch.allclose(frames[0], frames[-1])  # each frame is the x_t its step started from
    assert "step" not in vars(pipe.scheduler)  # the scheduler's own step is back
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    frames, x0_frames, _ = sample_trajectory(pipe, CASES, num_frames=3, num_inference_steps=6,
                                             generator=torch.Generator().manual_seed(0))
    final = pipe(CASES, num_inference_steps=6, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert torch.allclose((x0_frames[-1] / 2 + 0.5).clamp(0, 1), final)
    pipe.scheduler = make_scheduler("dpm++", pipe.scheduler.config)
    assert sample_trajectory(pipe, CASES, num_frames=2, num_inference_steps=4)[1] == [None, None]  # none reported


# ---------------------------------------------------------------------------------------------
# Stored guidance: model_index.json carries each model's default guidance weight and sampler
# ---------------------------------------------------------------------------------------------

def test_stored_guidance_survives_save_and_load_and_is_the_default(tmp_path):
    pipe = make_pipe()
    pipe.register_to_config(guidance_scale=2.5, sampler="ddim", num_inference_steps=3)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert (index["guidance_scale"], index["sampler"], index["num_inference_steps"]) == (2.5, "ddim", 3)
    loaded = load_pipeline(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.guidance_scale == 2.5 and loaded.config.sampler == "ddim"
    assert set(loaded.components) == {"unet", "scheduler", "label_encoder"}  # settings are not components
    # pipe(labels) without guidance_scale samples at the stored weight, not at 1.
    assert np.allclose(sample(loaded), sample(loaded, guidance_scale=2.5))
    assert not np.allclose(sample(loaded), sample(loaded, guidance_scale=1.0))
    # The stored steps apply to the stored sampler only.
    assert isinstance(loaded.scheduler, DDPMScheduler) and loaded.default_steps() == 1000
    loaded.scheduler = make_scheduler(loaded.config.sampler, loaded.scheduler.config)
    assert isinstance(loaded.scheduler, DDIMScheduler) and loaded.default_steps() == 3


def test_folders_without_stored_guidance_default_to_one(tmp_path):
    make_pipe().save_pretrained(tmp_path)
    index_path = tmp_path / "model_index.json"
    index = json.loads(index_path.read_text())
    for key in ("guidance_scale", "sampler", "num_inference_steps"):  # a folder saved before these existed
        index.pop(key)
    index_path.write_text(json.dumps(index))
    loaded = load_pipeline(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.guidance_scale == 1.0 and loaded.config.sampler is None
    assert np.allclose(sample(loaded), sample(loaded, guidance_scale=1.0))
    assert loaded.default_steps() == 1000  # the DDPM scheduler it was saved with
