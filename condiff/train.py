"""One training loop for every notebook and the CLI, built on Accelerate.

The same code runs on a CPU, one GPU or several (``accelerate launch -m condiff train RECIPE``):

    for step in range(max_steps):
        x0, labels = data.batch(step)                     # (B, 3, H, W) in [-1, 1], (B, L)
        labels[dropped] = 0                               # null label: classifier-free guidance
        t, noise = random timesteps, N(0, I)
        x_t = scheduler.add_noise(x0, noise, t)           # forward process, notebook 1
        loss = mse(predict_noise(unet, encoder, x_t, t, labels), noise)
        AdamW step (warm-up + cosine decay, gradient clipping), EMA update

Everything random is drawn from ``(seed, step, process)``, so a run is reproducible and a
resumed run continues exactly as an uninterrupted one would. Every ``checkpoint_every`` steps
the output folder gets ``checkpoint-NNNNNN/`` (Accelerate's ``save_state``, written to a temporary
folder, then renamed), the EMA weights as a diffusers pipeline (written by the save hook), and
``history.json`` (the loss curve notebooks plot). With
``snapshot_every`` it also keeps ``snapshots/step-NNNNNN/``, the EMA pipeline at that step, which
``condiff.tools.benchmark.training_curve`` scores to plot accuracy against training time.

On a GPU everything a step needs is drawn on it: the scenes (``data.scenes``), the noise,
the timesteps and the label dropout. The step never waits for the device (the losses are read
back every ``log_every`` steps), runs in bf16 autocast (on a CPU too, when it has bf16 units) with fused
AdamW, and can run the UNet through ``torch.compile``. No render workers: one CPU thread draws scenes far
faster than a CPU trains on them.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel, compute_snr
from tqdm import tqdm

from .data.iclevr import held_out_combinations
from .data.scenes import ProceduralScenes, step_generator
from .models import build_models, count_parameters, predict_noise
from .pipeline import ConditionalDDPMPipeline
from .recipes import Recipe, get_recipe
from .runfolder import RunFolder, latest_checkpoint
from .runinfo import git_commit, hardware

COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")  # torch.compile's modes for the UNet
# The 4th key of a step's generator for noise, timesteps and label dropout. Not 0: SeedSequence seeds
# [seed, step, rank, 0] as [seed, step, rank], which is the data's key.
NOISE_STREAM = 1
# What a resumed run must keep, so that its images_seen and reproduction command stay true; the CLI's flags.
RUN_SETTINGS = {"batch_size": "--batch-size", "learning_rate": "--learning-rate", "seed": "--seed"}


def default_data(recipe: Recipe, device: torch.device | str = "cpu") -> ProceduralScenes:
    """Fresh procedural scenes, drawn on the training device; new_test's combinations never appear."""
    return ProceduralScenes(size=recipe.image_size, max_objects=recipe.max_objects,
                            exclude=held_out_combinations(), seed=recipe.seed, device=device)


class RunState(SimpleNamespace):
    """The run's progress (``step``, ``history``, ``seconds``), checkpointed with the weights by Accelerate."""

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def train(
    recipe: Recipe | str,
    output_dir: str | Path,
    data=None,
    max_steps: int | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    progress: bool = True,
    channels_last: bool = True,
    snapshot_every: int = 0,
    note: str | None = None,
    command: str | None = None,
    log_every: int = 50,
    compile_mode: str | None = None,
    device: str | None = None,
    overwrite_shipped: bool = False,
) -> dict:
    """Train ``recipe`` into ``output_dir``; return the run's summary (also in ``training.json``).

    ``data`` is anything with ``batch(step, batch_size, rank)`` (default: procedural scenes).
    ``resume`` continues from the newest ``output_dir/checkpoint-NNNNNN`` when there is one. ``stop_after`` ends
    this call after that many steps (the run can be resumed later), for time-boxed sessions.
    ``snapshot_every`` keeps the EMA pipeline every that many steps in ``output_dir/snapshots/``.
    ``note`` (how the machine was shared, say) and ``command`` (the command line that reproduces the run;
    the CLI passes its own) go into ``training.json`` and the weights card.

    The step never waits for the device: the losses stay on it and are read back every ``log_every``
    steps (and at checkpoints), one history entry per step. ``compile_mode`` (``"default"``,
    ``"reduce-overhead"`` for CUDA graphs, ``"max-autotune"``) runs the UNet through ``torch.compile``.
    ``device`` (``"cpu"`` or ``"cuda"``) defaults to a GPU when there is one.

    The folder is guarded by ``RunFolder`` (condiff/runfolder.py): shipped weights are refused unless
    ``overwrite_shipped``, one run at a time, the pipeline swapped in atomically. A resumed run keeps
    the batch size, learning rate and seed it started with: a change raises ``ValueError``.
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    recipe = recipe.with_overrides(max_steps=max_steps)
    if snapshot_every % recipe.checkpoint_every:
        raise ValueError(f"snapshot_every={snapshot_every} must be a multiple of the recipe's "
                         f"checkpoint_every={recipe.checkpoint_every} (snapshots are taken at checkpoints)")
    if device not in (None, "cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise ValueError(f"device={device!r}: allowed are None (a GPU if there is one), 'cpu', or 'cuda' "
                         f"where a GPU is visible ({'one is' if torch.cuda.is_available() else 'none is'} here)")
    if recipe.timestep_sampling not in TIMESTEP_SAMPLING:
        raise ValueError(f"timestep_sampling={recipe.timestep_sampling!r}; allowed: {', '.join(TIMESTEP_SAMPLING)}")
    if log_every < 1:
        raise ValueError(f"log_every={log_every}: allowed are 1 or more (steps between loss read-backs)")
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode={compile_mode!r}; allowed: {', '.join(map(str, COMPILE_MODES))}")
    output_dir = Path(output_dir)
    commit = git_commit()  # the code this run starts with
    on_gpu = torch.cuda.is_available() and device != "cpu"
    accelerator = Accelerator(cpu=not on_gpu, mixed_precision=mixed_precision(recipe, on_gpu, progress))
    with RunFolder(output_dir, overwrite_shipped, lock=accelerator.is_main_process) as folder:
        data = data if data is not None else default_data(recipe, accelerator.device)
        torch.manual_seed(recipe.seed)  # the initial weights

        # 1. Model, noise schedule, optimiser, EMA.
        label_names = getattr(data, "label_names", None)
        unet, encoder = build_models(
            recipe.mode, **recipe.model_kwargs(), num_labels=data.num_labels, max_objects=recipe.max_objects,
            **({"label_names": label_names} if label_names is not None else {}),
        )
        if channels_last:
            unet = unet.to(memory_format=torch.channels_last)
        noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule=recipe.beta_schedule)
        trainable = [m for m in (unet, encoder) if m is not None]
        params = [p for m in trainable for p in m.parameters()]
        # Fused AdamW on a GPU: one kernel for all parameters. The rate follows the batch size (recipes.py).
        optimizer = torch.optim.AdamW(params, lr=recipe.scaled_learning_rate(), weight_decay=0.0, fused=on_gpu)
        lr_schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, recipe.max_steps)
        ema = EMAModel(params, decay=recipe.ema_decay, use_ema_warmup=True, power=3 / 4, foreach=True)
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

        # 2. Accelerate wraps the models and the optimiser; the EMA, the LR schedule (ours: one step per
        #    optimiser step) and the run's progress are registered, so save_state / load_state cover them
        #    all, and its save hook writes the EMA weights as a pipeline beside the checkpoint.
        *models, optimizer = accelerator.prepare(*trainable, optimizer)
        run_unet, run_encoder = (*models, None)[:2]  # no encoder for the unconditional model
        # Optimiser steps done, losses, training seconds, and the settings the run started with.
        run = RunState(step=0, history=[], seconds=0.0, settings={k: getattr(recipe, k) for k in RUN_SETTINGS})
        accelerator.register_for_checkpointing(ema, lr_schedule, run)

        def save_hook(models, weights, checkpoint_dir):  # Accelerate's signature; the pipeline goes in the run folder
            if accelerator.is_main_process:
                save_ema_pipeline(folder, trainable, ema, noise_scheduler)

        accelerator.register_save_state_pre_hook(save_hook)
        checkpoint = latest_checkpoint(output_dir) if resume else None
        if checkpoint is not None:
            try:
                accelerator.load_state(checkpoint)
            except Exception as error:
                raise OSError(f"cannot resume from {checkpoint}: it is corrupted or from another recipe ({error})") \
                    from error
            check_same_settings(run.settings, recipe, output_dir)
        ema.to(accelerator.device)
        start = run.step
        if compile_mode:
            run_unet = torch.compile(run_unet, mode=compile_mode)  # checkpoints save the uncompiled modules

        # 3. The loop.
        rank, device = accelerator.process_index, accelerator.device
        end = recipe.max_steps if stop_after is None else min(recipe.max_steps, start + stop_after)
        bar = tqdm(range(start, end), initial=start, total=recipe.max_steps, desc=recipe.name,
                   disable=not (progress and accelerator.is_main_process), mininterval=5)
        tick, saved = time.perf_counter(), start  # saved: the step of the last complete checkpoint
        pending = []  # (step, loss on the device, lr, seconds): read back every log_every steps
        for step in bar:
            if compile_mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs: the last step's outputs may be reused
            x0, labels = data.batch(step, recipe.batch_size, rank)  # (B, 3, H, W) in [-1, 1], (B, L)
            x0, labels = x0.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            g = step_generator(device, recipe.seed, step, rank, NOISE_STREAM)  # on the device, like the data
            noise = torch.randn(x0.shape, generator=g, device=device)
            t = sample_timesteps(recipe.timestep_sampling, x0.shape[0], noise_scheduler.config.num_train_timesteps, g)
            drop = torch.rand(x0.shape[0], generator=g, device=device) < recipe.label_dropout
            labels = labels * (~drop)[:, None]  # the null label is all zeros
            x_t = noise_scheduler.add_noise(x0, noise, t)
            if channels_last:
                x_t = x_t.contiguous(memory_format=torch.channels_last)

            with accelerator.autocast():
                pred = predict_noise(run_unet, run_encoder, x_t, t, labels if encoder is not None else None)
            loss = diffusion_loss(pred, noise, t, noise_scheduler, recipe.snr_gamma)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, recipe.grad_clip)
            optimizer.step()
            lr_schedule.step()
            optimizer.zero_grad(set_to_none=True)
            ema.step(params)

            pending.append((step + 1, loss.detach(), lr_schedule.get_last_lr()[0], time.perf_counter() - tick))
            checkpoint_now = (step + 1) % recipe.checkpoint_every == 0 or step + 1 == end
            if checkpoint_now or (step + 1) % log_every == 0:
                run.history += _read_back(pending, accelerator, run.seconds, tick)
                bar.set_postfix(loss=f"{run.history[-1]['loss']:.4f}")
                pending = []
            if checkpoint_now:
                run.step, run.seconds = step + 1, run.seconds + time.perf_counter() - tick
                tick = time.perf_counter()
                try:
                    folder.save_checkpoint(accelerator, run.step)  # and, through the hook, the EMA pipeline
                    if accelerator.is_main_process:
                        _write_records(folder, recipe, run, trainable, accelerator.num_processes, commit, note, command)
                        if snapshot_every and run.step % snapshot_every == 0:
                            folder.snapshot(run.step)
                except (OSError, RuntimeError) as error:
                    raise folder.save_error(error, run.step, saved) from None
                saved = run.step
                accelerator.wait_for_everyone()
        bar.close()
        return json.loads((output_dir / "training.json").read_text())


def bf16_on_cpu() -> bool:
    """Whether this CPU has bf16 units (AVX-512 BF16 or AMX): without them bf16 autocast is emulated, and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def mixed_precision(recipe: Recipe, on_gpu: bool, verbose: bool = True) -> str:
    """Accelerate's ``mixed_precision`` for this run: the recipe's on a GPU, bf16 on a CPU that has bf16 units."""
    if on_gpu or recipe.mixed_precision != "bf16":
        return recipe.mixed_precision
    if bf16_on_cpu():
        return "bf16"
    if verbose:
        print("bf16: this CPU has no bf16 units (avx512_bf16 or amx), so training runs in fp32")
    return "no"


TIMESTEP_SAMPLING = ("uniform", "high_noise")


def sample_timesteps(how: str, n: int, num_train_timesteps: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` training timesteps ``(n,)``: ``uniform`` (Ho et al.), or ``high_noise`` with density rising
    linearly in t, p(t) proportional to t, so that the noisy steps where a scene's layout and its objects are
    decided are drawn more often (after SpeeD's asymmetric sampling, Wang et al. 2024)."""
    device = generator.device
    if how == "uniform":
        return torch.randint(0, num_train_timesteps, (n,), generator=generator, device=device)
    if how == "high_noise":
        u = torch.rand(n, generator=generator, device=device)
        return (u.sqrt() * num_train_timesteps).long().clamp(max=num_train_timesteps - 1)
    raise ValueError(f"unknown timestep_sampling {how!r}; allowed: {', '.join(TIMESTEP_SAMPLING)}")


def diffusion_loss(pred: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, noise_scheduler: DDPMScheduler,
                   snr_gamma: float | None = None) -> torch.Tensor:
    """MSE of the noise prediction ``(B, 3, H, W)``; with ``snr_gamma``, each image weighted by
    ``min(SNR(t), gamma) / SNR(t)`` (Min-SNR, Hang et al. 2023): the easy, nearly clean steps count less."""
    if snr_gamma is None:
        return F.mse_loss(pred.float(), noise)
    snr = compute_snr(noise_scheduler, t)  # (B,)
    per_image = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))  # (B,)
    return (per_image * snr.clamp(max=snr_gamma) / snr).mean()


def _read_back(pending: list, accelerator, seconds: float, tick: float) -> list[dict]:
    """History entries for the ``pending`` (step, loss, lr, clock) tuples, with one wait for the device.

    Losses are averaged over processes. A step's clock is the host's when it queued the step; the
    last one's is read once the device has caught up. ``seconds`` is the training time before ``tick``.
    """
    losses = accelerator.gather(torch.stack([p[1] for p in pending])[None]).mean(0).tolist()  # (N,): waits
    clocks = [p[3] for p in pending[:-1]] + [time.perf_counter() - tick]
    return [{"step": s, "loss": round(loss, 5), "lr": lr, "seconds": round(seconds + clock, 2)}
            for (s, _, lr, _), loss, clock in zip(pending, losses, clocks)]


def check_same_settings(saved: dict, recipe: Recipe, output_dir: Path) -> None:
    """Refuse to resume a run with another batch size, learning rate or seed than it started with."""
    for key, flag in RUN_SETTINGS.items():
        value = getattr(recipe, key)
        if key in saved and saved[key] != value:
            raise ValueError(
                f"{output_dir} was started with {flag} {saved[key]}; resuming it with {flag} {value} would mix "
                f"two runs (its images_seen and reproduction command would be wrong). Resume with {flag} "
                f"{saved[key]} (or without {flag}), or start over with --fresh")


def save_ema_pipeline(folder: RunFolder, trainable: list, ema: EMAModel, noise_scheduler) -> None:
    """The EMA weights as a pipeline anyone can load, written from copies: training's modules stay as they are.

    The copied UNet is made contiguous: converting the training UNet in place would change its layout
    mid-run, so a resumed run (channels_last again) would drift from an uninterrupted one, and DDP's
    buckets would break.
    """
    copies = [copy.deepcopy(m) for m in trainable]
    ema.copy_to([p for m in copies for p in m.parameters()])
    unet, encoder = copies[0].to(memory_format=torch.contiguous_format), (copies[1:] or [None])[0]
    pipeline = ConditionalDDPMPipeline(unet=unet, scheduler=noise_scheduler, label_encoder=encoder)
    folder.save_pipeline(pipeline)  # swapped in file by file: loadable at every moment


def _write_records(folder, recipe, run, trainable, num_processes, commit, note=None, command=None) -> None:
    """The loss history and the run's summary, each written whole."""
    history = run.history
    folder.write_text("history.json", json.dumps(history) + "\n")
    summary = {
        "recipe": recipe.to_dict(),
        "steps": run.step,
        "images_seen": run.step * recipe.batch_size * num_processes,
        "train_seconds": round(run.seconds, 1),
        "final_loss": sum(h["loss"] for h in history[-100:]) / max(1, len(history[-100:])),
        "parameters": count_parameters(*trainable),
        "hardware": hardware(),
        "processes": num_processes,
        "commit": commit,
        "torch": torch.__version__,
        "seed": recipe.seed,
    }
    if command:
        summary["command"] = command
    if note:
        summary["note"] = note
    folder.write_text("training.json", json.dumps(summary, indent=1) + "\n")
