"""The training loop: reproducible, resumable (even after a kill), clear on bad checkpoints, and DDP-ready.

Every test uses the tests' ``tiny`` recipe (tests/tiny.py: 16x16 scenes, a 47k-parameter UNet, 4 steps,
a checkpoint every 2 steps) and trains on the CPU in about a second.

On the CPU a run is bit-for-bit reproducible: everything random is drawn from ``(seed, step, rank)``
and the kernels are deterministic for a given thread count. So the tests below compare loss
histories and weights *exactly*, not with a tolerance: a tolerance would hide the kind of drift they
are here to catch (for example a resumed run whose weights sit in another memory layout gives
rounded losses that still agree while its weights drift by 1e-3, because Adam turns rounding noise
in tiny gradients into full-size steps). The losses in ``history.json`` are rounded to 5 decimals,
so on them a "1e-6 tolerance" would be the same as equality anyway.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny import TINY

from condiff.models import Denoiser, build_denoiser
from condiff.pipeline import load_pipeline
from condiff.recipes import RECIPES
from condiff.runfolder import latest_checkpoint
from condiff.train import load_start, train, warm_start

REPO = Path(__file__).resolve().parents[1]
TINY_CLI = [sys.executable, str(Path(__file__).with_name("tiny.py"))]  # `python -m condiff` that knows "tiny"


def run(out, **kwargs) -> dict:
    """``train(TINY, out)`` without a progress bar, a history entry every step; returns the summary."""
    return train(TINY, out, progress=False, **{"log_every": 1, **kwargs})


def without_clock(history: list[dict]) -> list[dict]:
    """History entries minus their wall-clock ``seconds`` (which no two runs share)."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def history(out) -> list[dict]:
    return without_clock(json.loads((Path(out) / "history.json").read_text()))


def checkpoint(out) -> dict:
    """The newest checkpoint folder, read as Accelerate's ``save_state`` wrote it: the model's weights (one
    dict), the optimiser, and the registered objects in their order (EMA, LR schedule, run state)."""
    folder = latest_checkpoint(Path(out))
    assert folder is not None, f"no checkpoint in {out}"

    def load(name):
        return torch.load(folder / name, map_location="cpu", weights_only=False)

    ema, lr_schedule, run_state = (load(p.name) for p in sorted(folder.glob("custom_checkpoint_*.pkl")))
    models = {k: v for p in folder.glob("*.safetensors") for k, v in load_file(p).items()}  # unet.*, encoder.*
    return {"models": models, "optimizer": load("optimizer.bin"), "ema": ema, "lr_schedule": lr_schedule,
            **run_state}


def assert_same_state(a: dict, b: dict) -> None:
    """Two checkpoints hold exactly the same weights, optimiser moments, EMA and history."""
    assert a["step"] == b["step"]
    assert without_clock(a["history"]) == without_clock(b["history"])
    assert a["models"].keys() == b["models"].keys()
    assert any(name.startswith("encoder.") for name in a["models"])  # time_sum: UNet and label encoder
    for name, weight in a["models"].items():
        assert torch.equal(weight, b["models"][name]), f"{name} differs"
    for i, state in a["optimizer"]["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state[name], b["optimizer"]["state"][i][name]), f"optimizer {i}.{name} differs"
    assert a["lr_schedule"] == b["lr_schedule"]
    assert len(a["ema"]["shadow_params"]) == len(b["ema"]["shadow_params"])
    for x, y in zip(a["ema"]["shadow_params"], b["ema"]["shadow_params"]):
        assert torch.equal(x, y), "EMA weights differ"


def child_env(**extra) -> dict:
    """The environment for a training subprocess: one thread, CPU only, no stray accelerate config."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)  # this checkout's condiff
    return dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1", PYTHONPATH=path,
                **extra)


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread, like the subprocesses: for a model this small more threads only wait on each
    other (ten times slower on a busy 2-core machine), and the killed-run test compares a subprocess's
    steps with in-process ones bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# Reproducibility and resuming
# ---------------------------------------------------------------------------------------------

def test_same_seed_same_config_same_run(tmp_path):
    a = run(tmp_path / "a", resume=False)
    b = run(tmp_path / "b", resume=False)
    assert history(tmp_path / "a") == history(tmp_path / "b")
    assert [h["step"] for h in history(tmp_path / "a")] == [1, 2, 3, 4]
    for key in ("steps", "images_seen", "final_loss", "parameters", "seed", "recipe"):
        assert a[key] == b[key], key
    assert a["steps"] == 4 and a["images_seen"] == 4 * TINY.batch_size
    assert_same_state(checkpoint(tmp_path / "a"), checkpoint(tmp_path / "b"))


def test_another_seed_gives_another_run(tmp_path):
    """The comparison above is not vacuous: the seed does reach the losses."""
    run(tmp_path / "a", resume=False)
    train(TINY.with_overrides(seed=1), tmp_path / "b", progress=False, resume=False)
    assert [h["loss"] for h in history(tmp_path / "a")] != [h["loss"] for h in history(tmp_path / "b")]


@pytest.mark.parametrize("stop_after", [1, 2, 3])  # 2: at a checkpoint; 1 and 3: between two
def test_resumed_run_equals_uninterrupted_run(tmp_path, stop_after):
    part = run(tmp_path / "a", stop_after=stop_after)
    assert part["steps"] == stop_after and len(history(tmp_path / "a")) == stop_after
    resumed = run(tmp_path / "a")  # picks up the checkpoint
    straight = run(tmp_path / "b")
    assert history(tmp_path / "a") == history(tmp_path / "b")  # steps, losses and learning rates
    assert resumed["steps"] == straight["steps"] == TINY.max_steps
    assert resumed["images_seen"] == straight["images_seen"]
    assert_same_state(checkpoint(tmp_path / "a"), checkpoint(tmp_path / "b"))


def as_two_models(folder: Path) -> None:
    """Rewrite a checkpoint in the layout of runs made before ``Denoiser``: the UNet and the label encoder
    saved by Accelerate as two models, pickled (``pytorch_model.bin``, ``pytorch_model_1.bin``)."""
    (weights,) = folder.glob("*.safetensors")
    state = load_file(weights)
    for i, part in enumerate(("unet.", "encoder.")):
        torch.save({k[len(part):]: v for k, v in state.items() if k.startswith(part)},
                   folder / f"pytorch_model{f'_{i}' if i else ''}.bin")
    weights.unlink()


def test_a_checkpoint_saved_before_the_denoiser_resumes_exactly(tmp_path):
    run(tmp_path / "a", stop_after=2)
    as_two_models(latest_checkpoint(tmp_path / "a"))
    run(tmp_path / "a")
    run(tmp_path / "b")
    assert history(tmp_path / "a") == history(tmp_path / "b")
    assert_same_state(checkpoint(tmp_path / "a"), checkpoint(tmp_path / "b"))


@pytest.mark.parametrize("change", [{"beta_schedule": "squaredcos_cap_v2"}, {"block_out_channels": (8, 8)},
                                    {"mode": "concat"}, {"timestep_sampling": "high_noise"}],
                         ids=lambda change: next(iter(change)))
def test_resuming_with_another_recipe_is_refused(tmp_path, change):
    run(tmp_path, stop_after=2)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises((ValueError, OSError), match="another recipe|was started with"):
        train(TINY.with_overrides(**change), tmp_path, progress=False)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_resuming_a_finished_run_trains_no_further(tmp_path):
    run(tmp_path)
    before = checkpoint(tmp_path)
    summary = run(tmp_path)
    assert summary["steps"] == TINY.max_steps
    assert_same_state(before, checkpoint(tmp_path))


def test_fresh_run_ignores_the_checkpoint(tmp_path):
    run(tmp_path / "a", stop_after=2)
    run(tmp_path / "a", resume=False)
    run(tmp_path / "b")
    assert history(tmp_path / "a") == history(tmp_path / "b")


def test_killed_run_resumes_and_finishes(tmp_path):
    """SIGKILL a ``python -m condiff train`` subprocess (tests/tiny.py) after its first checkpoint; resuming finishes.

    The checkpoint is written to a temporary folder and renamed, so whenever the kill lands, the newest
    ``checkpoint-NNNNNN`` folder is a whole checkpoint. The resumed run (in-process, one thread like the
    subprocess) must end where an uninterrupted run ends.
    """
    steps = 20  # >1 s of training left after the first checkpoint: still running when killed 0.1 s later
    out = tmp_path / "run"
    log = (tmp_path / "train.log").open("w")
    proc = subprocess.Popen(
        [*TINY_CLI, "train", "tiny", "--out", str(out), "--max-steps", str(steps), "--log-every", "1"],
        cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while latest_checkpoint(out) is None:
            assert proc.poll() is None, f"training exited early:\n{(tmp_path / 'train.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint after 90 s"
            time.sleep(0.02)
        time.sleep(0.1)  # let it get a little further, so the kill lands mid-run
        assert proc.poll() is None, "the run finished before it could be killed: raise `steps`"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()

    state = checkpoint(out)  # loads: never half-written
    assert 2 <= state["step"] < steps
    assert state["step"] % TINY.checkpoint_every == 0
    assert [h["step"] for h in state["history"]] == list(range(1, state["step"] + 1))

    summary = run(out, max_steps=steps)  # one thread, like the subprocess, so the comparison can be exact
    run(tmp_path / "straight", max_steps=steps)
    assert summary["steps"] == steps
    assert summary["images_seen"] == steps * TINY.batch_size
    assert json.loads((out / "training.json").read_text())["steps"] == steps
    assert [h["step"] for h in history(out)] == list(range(1, steps + 1))
    assert history(out) == history(tmp_path / "straight")
    assert_same_state(checkpoint(out), checkpoint(tmp_path / "straight"))
    load_pipeline(out)  # the pipeline folder was rewritten whole at the end


# ---------------------------------------------------------------------------------------------
# Bad checkpoints
# ---------------------------------------------------------------------------------------------

def _garbage(folder: Path) -> None:
    for weights in folder.glob("*.safetensors"):
        weights.write_bytes(b"this is not a checkpoint \x00\xff" * 64)


def _empty(folder: Path) -> None:
    (folder / "optimizer.bin").write_bytes(b"")


def _truncated(folder: Path) -> None:
    data = (folder / "custom_checkpoint_0.pkl").read_bytes()  # the EMA
    (folder / "custom_checkpoint_0.pkl").write_bytes(data[: len(data) // 2])


def _missing(folder: Path) -> None:
    (folder / "custom_checkpoint_2.pkl").unlink()  # the run's step and history


def _other_model(folder: Path) -> None:
    torch.save({"conv_in.weight": torch.zeros(4, 3, 3, 3)}, folder / "pytorch_model.bin")  # another UNet, old layout


@pytest.mark.parametrize("damage", [_garbage, _empty, _truncated, _missing, _other_model],
                         ids=lambda f: f.__name__[1:])
def test_corrupted_checkpoint_gives_a_clear_error(tmp_path, damage):
    run(tmp_path, stop_after=2)
    folder = latest_checkpoint(tmp_path)
    damage(folder)
    damaged = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(OSError) as error:
        run(tmp_path)
    assert str(folder) in str(error.value)
    assert "cannot resume" in str(error.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == damaged  # a failed resume leaves the evidence alone

    summary = run(tmp_path, resume=False)  # --fresh starts over
    assert summary["steps"] == TINY.max_steps
    assert [p.name for p in tmp_path.glob("checkpoint*")] == [f"checkpoint-{TINY.max_steps:06d}"]
    checkpoint(tmp_path)


def test_leftovers_of_a_killed_save_are_ignored_then_cleared(tmp_path):
    """A kill during a save leaves a ``.tmp`` (or ``.old``) folder: resuming ignores it, the next save clears it."""
    run(tmp_path / "a", stop_after=2)
    for leftover in ("checkpoint-000004.tmp", "checkpoint-000002.old"):
        (tmp_path / "a" / leftover).mkdir()
        (tmp_path / "a" / leftover / "pytorch_model.bin").write_bytes(b"half a checkpoint")
    assert latest_checkpoint(tmp_path / "a").name == "checkpoint-000002"
    run(tmp_path / "a")
    run(tmp_path / "b")
    assert history(tmp_path / "a") == history(tmp_path / "b")
    assert [p.name for p in (tmp_path / "a").glob("checkpoint*")] == ["checkpoint-000004"]


# ---------------------------------------------------------------------------------------------
# What a run leaves behind
# ---------------------------------------------------------------------------------------------

def test_output_folder_is_a_loadable_pipeline_with_a_summary(tmp_path):
    run(tmp_path)
    pipe = load_pipeline(tmp_path)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(["red cube", "blue sphere, gray cylinder"], num_inference_steps=2, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (2, 16, 16, 3) and np.isfinite(images).all()

    # The pipeline holds the EMA weights (not the raw ones), in the order training keeps them.
    state = checkpoint(tmp_path)
    saved = [*pipe.unet.parameters(), *pipe.label_encoder.parameters()]
    shadow = state["ema"]["shadow_params"]
    assert len(saved) == len(shadow)
    assert all(torch.equal(p.detach(), s) for p, s in zip(saved, shadow))
    raw = state["models"]
    assert not all(torch.equal(w, raw[f"unet.{name}"]) for name, w in pipe.unet.state_dict().items())

    summary = json.loads((tmp_path / "training.json").read_text())
    for key in ("steps", "images_seen", "train_seconds", "hardware", "commit", "seed"):
        assert key in summary, key
    assert summary["steps"] == TINY.max_steps
    assert summary["images_seen"] == TINY.max_steps * TINY.batch_size
    assert summary["processes"] == 1
    assert summary["seed"] == TINY.seed
    assert summary["train_seconds"] >= 0
    assert "command" not in summary  # train() called from Python: the CLI passes its command line
    assert summary["recipe"]["name"] == "tiny"
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temp files behind
    assert [p.name for p in tmp_path.glob("checkpoint*")] == [f"checkpoint-{TINY.max_steps:06d}"]  # the last only


# ---------------------------------------------------------------------------------------------
# Several processes
# ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_cpu_accelerate_launch(tmp_path):
    """``accelerate launch`` with 2 CPU processes (DDP over gloo) trains and counts both processes' images.

    With accelerate 1.x, ``--cpu --num_processes 2`` starts one process (CPU multi-process goes through
    mpirun), so the test uses ``--multi_gpu``, which starts torchrun; ``CUDA_VISIBLE_DEVICES=""``
    keeps it on the CPU even where there are GPUs, and condiff's ``Accelerator(cpu=True)`` picks gloo.
    """
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
        "--main_process_port", str(_free_port()),
        *TINY_CLI[1:], "train", "tiny", "--out", str(out), "--fresh", "--log-every", "1",
    ]
    env = child_env(HF_HOME=str(tmp_path / "hf_home"))  # no default_config.yaml from the user's cache
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((out / "training.json").read_text())
    assert summary["processes"] == 2
    assert summary["command"] == f"python -m condiff train tiny --max-steps {TINY.max_steps}"
    assert summary["steps"] == TINY.max_steps
    assert summary["images_seen"] == summary["steps"] * TINY.batch_size * 2
    assert [h["step"] for h in history(out)] == list(range(1, TINY.max_steps + 1))
    # The UNet keeps its memory layout through checkpoints, so DDP's gradient buckets stay valid.
    assert "Grad strides do not match bucket view strides" not in result.stderr
    # One learning-rate step per optimiser step, as in a single process (Accelerate would step a
    # prepared scheduler once per process).
    run(tmp_path / "single")
    assert [h["lr"] for h in history(out)] == [h["lr"] for h in history(tmp_path / "single")]
    load_pipeline(out)


def test_snapshots_keep_the_ema_pipeline_per_checkpoint(tmp_path):
    """Snapshots keep the EMA pipeline at every checkpoint and change nothing in the run."""
    train(TINY, tmp_path / "a", progress=False)
    train(TINY, tmp_path / "b", progress=False, snapshot_every=TINY.checkpoint_every)
    assert history(tmp_path / "a") == history(tmp_path / "b")
    snaps = sorted(p.name for p in (tmp_path / "b" / "snapshots").iterdir())
    assert snaps == [f"step-{s:06d}" for s in range(TINY.checkpoint_every, TINY.max_steps + 1, TINY.checkpoint_every)]
    first = tmp_path / "b" / "snapshots" / snaps[0]
    assert json.loads((first / "training.json").read_text())["steps"] == TINY.checkpoint_every
    assert not list(first.glob("checkpoint*")) and (first / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    seconds = [h["seconds"] for h in json.loads((tmp_path / "b" / "history.json").read_text())]
    assert seconds == sorted(seconds) and seconds[0] >= 0


def test_snapshot_every_must_fall_on_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="multiple of the recipe's checkpoint_every"):
        train(TINY, tmp_path, progress=False, snapshot_every=TINY.checkpoint_every + 1)


def test_min_snr_weighting_down_weights_the_easy_timesteps():
    from diffusers import DDPMScheduler

    from condiff.train import diffusion_loss

    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule=TINY.beta_schedule)
    g = torch.Generator().manual_seed(0)
    pred, noise = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    t = torch.tensor([5, 900])  # SNR far above and far below gamma = 5
    plain = diffusion_loss(pred, noise, t, scheduler)
    assert torch.equal(plain, torch.nn.functional.mse_loss(pred, noise))
    assert torch.allclose(diffusion_loss(pred, noise, t, scheduler, snr_gamma=1e12), plain)
    per_image = (pred - noise).square().mean(dim=(1, 2, 3))
    weighted = diffusion_loss(pred, noise, t, scheduler, snr_gamma=5.0)
    assert per_image[1] / 2 < weighted < plain  # the noisy image keeps weight 1, the easy one nearly 0


def test_a_variant_recipe_trains_and_loads(tmp_path):
    recipe = TINY.with_overrides(snr_gamma=5.0, time_scale_shift="scale_shift", attention_levels=2)
    summary = train(recipe, tmp_path, progress=False)
    assert summary["recipe"]["snr_gamma"] == 5.0 and summary["steps"] == TINY.max_steps
    pipe = load_pipeline(tmp_path)
    assert pipe.unet.config.resnet_time_scale_shift == "scale_shift"
    assert np.isfinite([h["loss"] for h in json.loads((tmp_path / "history.json").read_text())]).all()


def test_a_warm_restart_starts_from_the_given_weights_and_records_its_legs(tmp_path):
    first = run(tmp_path / "first", resume=False)
    second = train(TINY, tmp_path / "second", progress=False, init_from=tmp_path / "first")
    # The first step's loss is that of the trained weights, not of a fresh model's.
    fresh_loss = history(tmp_path / "first")[0]["loss"]
    assert history(tmp_path / "second")[0]["loss"] < fresh_loss
    [leg] = second["legs"]
    assert leg["steps"] == first["steps"] and leg["recipe"] == "tiny" and len(leg["digest"]) == 64
    assert second["images_seen_total"] == first["images_seen"] + second["images_seen"]
    resumed = train(TINY.with_overrides(max_steps=6), tmp_path / "second", progress=False)
    assert resumed["legs"] == second["legs"]  # the checkpoint keeps the legs; its weights, not init_from's


def test_a_warm_restart_may_widen_the_label_mlp_and_computes_the_same_at_first(tmp_path):
    run(tmp_path / "first", resume=False)
    start = load_pipeline(tmp_path / "first")
    narrow = Denoiser(start.unet, start.label_encoder)
    hidden = narrow.encoder.config.hidden_dim or narrow.encoder.config.out_dim
    wide = build_denoiser(TINY.mode, **TINY.with_overrides(label_hidden_dim=4 * hidden).model_kwargs())
    warm_start(wide, load_start(tmp_path / "first"), tmp_path / "first")
    assert wide.encoder.mlp[0].out_features == 4 * hidden
    x, t = torch.randn(2, 3, TINY.image_size, TINY.image_size), torch.tensor([10, 900])
    labels = torch.zeros(2, 24)
    labels[0, [1, 5]] = labels[1, 20] = 1
    with torch.no_grad():
        assert torch.allclose(wide(x, t, labels), narrow(x, t, labels), atol=1e-6)
        assert wide.encoder.mlp[2].weight[:, hidden:].abs().sum() == 0  # the new units start silent
    assert wide.encoder.mlp[0].weight[hidden:].abs().sum() > 0  # but with inputs, so they can learn
    summary = train(TINY.with_overrides(label_hidden_dim=4 * hidden), tmp_path / "wide", progress=False,
                    init_from=tmp_path / "first")
    assert summary["recipe"]["label_hidden_dim"] == 4 * hidden
    with pytest.raises(ValueError, match="holds another model"):  # narrower than the start: refused
        train(TINY.with_overrides(label_hidden_dim=hidden // 2), tmp_path / "narrow", progress=False,
              init_from=tmp_path / "first")


def test_a_warm_restart_from_another_model_is_refused_before_any_work(tmp_path):
    run(tmp_path / "first", resume=False)
    with pytest.raises(ValueError, match="holds another model"):
        train(TINY.with_overrides(mode="concat"), tmp_path / "second", progress=False, init_from=tmp_path / "first")
    with pytest.raises(FileNotFoundError, match="not a pipeline folder"):
        train(TINY, tmp_path / "third", progress=False, init_from=tmp_path / "nothing")
    assert not (tmp_path / "third").exists()


# ---------------------------------------------------------------------------------------------
# The GPU step, checked on the CPU: device-drawn data, losses read back in stretches, compile
# ---------------------------------------------------------------------------------------------

def test_history_has_one_entry_per_log_every_steps_with_their_mean_loss(tmp_path):
    run(tmp_path / "a", log_every=1)
    run(tmp_path / "b", log_every=3)  # entries at step 3 and at the last step, 4
    every, third = history(tmp_path / "a"), history(tmp_path / "b")
    assert [h["step"] for h in third] == [3, 4]
    assert third[0]["loss"] == pytest.approx(sum(h["loss"] for h in every[:3]) / 3, abs=2e-5)
    assert third[1]["loss"] == pytest.approx(every[3]["loss"], abs=2e-5)
    assert [h["lr"] for h in third] == [every[2]["lr"], every[3]["lr"]]


def test_an_entry_spanning_a_resume_equals_the_uninterrupted_one(tmp_path):
    run(tmp_path / "a", log_every=3, stop_after=2)  # stops (and saves) between two entries
    run(tmp_path / "a", log_every=3)
    run(tmp_path / "b", log_every=3)
    assert history(tmp_path / "a") == history(tmp_path / "b")
    assert_same_state(checkpoint(tmp_path / "a"), checkpoint(tmp_path / "b"))


def test_learning_rate_follows_the_batch_size(tmp_path):
    run(tmp_path)  # tiny: batch 8 against the reference 256
    peak = max(h["lr"] for h in history(tmp_path))
    assert peak == pytest.approx(TINY.learning_rate * (TINY.batch_size / TINY.reference_batch_size) ** 0.5)
    recipe = RECIPES["time_sum"]
    assert recipe.scaled_learning_rate() == recipe.learning_rate  # the reference batch
    assert recipe.with_overrides(batch_size=4 * recipe.batch_size).scaled_learning_rate() == 2 * recipe.learning_rate


def test_compiled_unet_trains_the_same_run(tmp_path, monkeypatch):
    """``compile_mode`` wraps only the running UNet: checkpoints and the pipeline hold the plain modules.

    Inductor takes minutes to compile on this CPU, so dynamo's eager backend stands in for it here
    (same graph capture, no code generation); a GPU session measures the real thing.
    """
    real_compile = torch.compile
    compiled = []

    def eager_compile(module, mode=None):
        compiled.append(mode)
        return real_compile(module, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    run(tmp_path / "compiled", compile_mode="reduce-overhead")
    run(tmp_path / "plain")
    assert compiled == ["reduce-overhead"]
    assert history(tmp_path / "compiled") == history(tmp_path / "plain")
    assert_same_state(checkpoint(tmp_path / "compiled"), checkpoint(tmp_path / "plain"))
    load_pipeline(tmp_path / "compiled")


@pytest.mark.parametrize("setting, match", [({"device": "tpu"}, "device="), ({"log_every": 0}, "log_every"),
                                            ({"compile_mode": "fast"}, "compile_mode")])
def test_bad_step_settings_are_refused_before_any_work(tmp_path, setting, match):
    with pytest.raises(ValueError, match=match):
        run(tmp_path / "run", **setting)
    assert not (tmp_path / "run").exists()


def test_a_warm_restart_without_ema_warmup_keeps_the_average_it_starts_from(tmp_path):
    # ema_decay 1: an average that never moves. With the warm-up the first updates copy the trained weights
    # (decay 0 at the first step); without it the run's weights stay exactly the start's.
    run(tmp_path / "first", resume=False)
    first = load_pipeline(tmp_path / "first")
    start = Denoiser(first.unet, first.label_encoder).state_dict()
    for warmup, same in [("off", True), ("on", False)]:
        summary = train(TINY.with_overrides(ema_decay=1.0, ema_warmup=warmup), tmp_path / warmup, progress=False,
                        init_from=tmp_path / "first")
        pipe = load_pipeline(tmp_path / warmup)
        after = Denoiser(pipe.unet, pipe.label_encoder).state_dict()
        assert all(torch.equal(after[k], start[k]) for k in start) == same, warmup
        assert summary["recipe"]["ema_warmup"] == warmup
    with pytest.raises(ValueError, match="ema_warmup='sometimes'; allowed: on, off"):
        train(TINY.with_overrides(ema_warmup="sometimes"), tmp_path / "bad", progress=False)
