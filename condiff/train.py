"""One training loop for every notebook and the CLI, built on Accelerate.

The same code runs on a CPU, one GPU or several (``accelerate launch -m condiff train RECIPE``):

    for step in range(max_steps):
        x0, labels = data.batch(step)                     # (B, 3, H, W) in [-1, 1], (B, L)
        labels[dropped] = 0                               # null label: classifier-free guidance
        t, eps = random timesteps, N(0, I)
        x_t = scheduler.add_noise(x0, eps, t)             # sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, notebook 1
        loss = mse(denoiser(x_t, t, labels), eps)         # denoiser: models.Denoiser, eps_theta
        AdamW step (warm-up + cosine decay, gradient clipping), EMA update

Everything random is drawn from ``(seed, step, process)``, so a run is reproducible and a
resumed run continues exactly as an uninterrupted one would. Every ``checkpoint_every`` steps
``save()`` writes, in this order, the EMA weights as a diffusers pipeline, ``checkpoint-NNNNNN/``
(Accelerate's ``save_state``, written to a temporary folder, then renamed), ``history.json`` (the loss
curve notebooks plot) and ``training.json``. With ``snapshot_every`` it also keeps
``snapshots/step-NNNNNN/``, the EMA pipeline at that step, which ``condiff.tools.benchmark.training_curve``
scores to plot accuracy against training time.

On a GPU everything a step needs is drawn on it: the scenes (``data.scenes``), the noise,
the timesteps and the label dropout. The step never waits for the device (the losses are summed on
it and read back every ``log_every`` steps), runs in bf16 autocast (on a CPU too, when it has bf16
units) with fused AdamW, and can run the model through ``torch.compile``. No render workers: one CPU
thread draws scenes far faster than a CPU trains on them.
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
from accelerate.state import AcceleratorState
from diffusers import DDPMScheduler
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel, compute_snr
from tqdm import tqdm

from .data.iclevr import held_out_combinations
from .data.scenes import ProceduralScenes, step_generator
from .models import Denoiser, build_denoiser, count_parameters
from .pipeline import ConditionalDDPMPipeline, load_pipeline
from .recipes import Recipe, get_recipe
from .runfolder import RunFolder, latest_checkpoint
from .runinfo import bf16_on_cpu, git_commit, hardware, weights_digest

COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")  # torch.compile's modes for the UNet
# The 4th key of a step's generator for noise, timesteps and label dropout. Not 0: SeedSequence seeds
# [seed, step, rank, 0] as [seed, step, rank], which is the data's key.
NOISE_STREAM = 1
# What a resumed run must keep, so that its images_seen and reproduction command stay true; the CLI's flags.
RUN_SETTINGS = {"batch_size": "--batch-size", "learning_rate": "--learning-rate", "seed": "--seed",
                "snr_gamma": "--snr-gamma", "timestep_sampling": "--timestep-sampling",
                "label_hidden_dim": "--label-hidden-dim", "ema_warmup": "--ema-warmup"}
# ... and the recipe's model and noise, so that the weights go on learning what they started to.
RESUME_SETTINGS = (*RUN_SETTINGS, "mode", "beta_schedule", "image_size", "block_out_channels",
                   "layers_per_block", "attention_levels", "time_scale_shift", "max_objects")


def default_data(recipe: Recipe, device: torch.device | str = "cpu") -> ProceduralScenes:
    """Fresh procedural scenes, drawn on the training device; new_test's combinations never appear."""
    return ProceduralScenes(size=recipe.image_size, max_objects=recipe.max_objects,
                            exclude=held_out_combinations(), seed=recipe.seed, device=device)


class RunState(SimpleNamespace):
    """The run's progress, checkpointed with the weights: ``step``, ``history``, training ``seconds``, the
    ``settings`` it started with and ``loss_sum``, the losses (on the device) since the last history entry."""

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
    snapshot_every: int = 0,
    note: str | None = None,
    command: str | None = None,
    log_every: int = 50,
    compile_mode: str | None = None,
    device: str | None = None,
    overwrite_shipped: bool = False,
    init_from: str | Path | None = None,
) -> dict:
    """Train ``recipe`` into ``output_dir``; return the run's summary (also in ``training.json``).

    ``data`` is anything with ``batch(step, batch_size, rank)`` (default: procedural scenes).
    ``resume`` continues from the newest ``output_dir/checkpoint-NNNNNN`` when there is one. ``stop_after`` ends
    this call after that many steps (resumable later). ``snapshot_every`` keeps the EMA pipeline every that many
    steps in ``output_dir/snapshots/``. ``note`` (how the machine was shared, say) and ``command`` (the command line
    that reproduces the run; the CLI passes its own) go into ``training.json`` and the weights card.

    ``history.json`` gets one entry every ``log_every`` steps and at the last step: the mean loss over the
    steps since the entry before (summed on the device, read back once), the learning rate and the training
    seconds so far. ``compile_mode`` (``"default"``, ``"reduce-overhead"`` for CUDA graphs, ``"max-autotune"``)
    runs the model through ``torch.compile``. ``device`` (``"cpu"`` or ``"cuda"``) defaults to a GPU when there is one.

    The folder is guarded by ``RunFolder`` (condiff/runfolder.py): shipped weights are refused unless
    ``overwrite_shipped``, one run at a time, the pipeline swapped in atomically. A resumed run keeps the
    batch size, learning rate, seed and model (``RESUME_SETTINGS``) it started with: a change raises ``ValueError``.

    ``init_from`` (a pipeline folder of the same model, e.g. ``weights/NAME`` or another run) starts a new run
    from those weights instead of random ones: a warm restart, with a fresh optimiser, warm-up and schedule.
    ``training.json`` lists the runs behind those weights as ``legs`` (each leg's command, commit, hardware,
    steps, images and time) and counts ``images_seen_total``. A resumed run keeps the weights of its checkpoint.
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    recipe = recipe.with_overrides(max_steps=max_steps)
    check_train_args(recipe, snapshot_every, device, log_every, compile_mode)
    output_dir = Path(output_dir)
    start = load_start(init_from) if init_from is not None else None  # refused before any work if unloadable
    commit = git_commit()  # the code this run starts with
    on_gpu = torch.cuda.is_available() and device != "cpu"
    AcceleratorState._reset_state()  # Accelerate keeps one precision per process; a process may train fp32, then bf16
    accelerator = Accelerator(cpu=not on_gpu, mixed_precision=mixed_precision(recipe, on_gpu, progress))
    with RunFolder(output_dir, overwrite_shipped, lock=accelerator.is_main_process) as folder:
        accelerator.wait_for_everyone()  # the main process has checked, locked and cleaned the folder
        data = data if data is not None else default_data(recipe, accelerator.device)
        rank, device = accelerator.process_index, accelerator.device

        # 1. The model, the noise schedule, the optimiser (the rate follows the batch size, recipes.py), the EMA.
        torch.manual_seed(recipe.seed)  # the initial weights
        names = {"label_names": data.label_names} if getattr(data, "label_names", None) is not None else {}
        denoiser = build_denoiser(recipe.mode, **recipe.model_kwargs(), num_labels=data.num_labels,
                                  max_objects=recipe.max_objects, **names)
        checkpoint = latest_checkpoint(output_dir) if resume else None
        if start is not None and checkpoint is None:
            warm_start(denoiser, start, init_from)  # before the EMA, which starts as a copy of these weights
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule=recipe.beta_schedule)
        params = list(denoiser.parameters())
        optimizer = torch.optim.AdamW(params, lr=recipe.scaled_learning_rate(), weight_decay=0.0, fused=on_gpu)
        lr_schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, recipe.max_steps)
        # The EMA's warm-up makes its decay 1 - (1 + step)^(-3/4), a ~100-step horizon at step 500; ema_warmup="off"
        # (min_decay) keeps ema_decay from the first step, for a warm restart, which starts from an average already.
        ema = EMAModel(params, decay=recipe.ema_decay, use_ema_warmup=True, power=3 / 4, foreach=True,
                       min_decay=recipe.ema_decay if recipe.ema_warmup == "off" else 0.0)
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

        # 2. Accelerate wraps the model and the optimiser; the EMA, the LR schedule (one step per optimiser
        #    step) and the run's progress are registered, so save_state / load_state cover them all.
        model, optimizer = accelerator.prepare(denoiser, optimizer)
        run = RunState(step=0, history=[], seconds=0.0, loss_sum=torch.zeros((), device=device),
                       settings=resume_settings(recipe), legs=start["legs"] if start is not None else [])
        accelerator.register_for_checkpointing(ema, lr_schedule, run)
        if checkpoint is not None:
            load_checkpoint(accelerator, checkpoint)
            check_same_settings(run.settings, recipe, output_dir)
            run.settings = {**resume_settings(recipe), **run.settings}  # what an older run did not record yet
        ema.to(device)
        run.loss_sum = torch.as_tensor(run.loss_sum, device=device)  # a run saved before loss_sum: zeros
        if compile_mode:
            model = torch.compile(model, mode=compile_mode)  # checkpoints save the uncompiled module
        started, saved = time.perf_counter() - run.seconds, run.step  # saved: the last whole checkpoint

        def save():
            """The EMA weights as a pipeline, the checkpoint, the history and summary (and a snapshot)."""
            nonlocal saved
            run.seconds = time.perf_counter() - started
            try:
                if accelerator.is_main_process:
                    save_ema_pipeline(folder, accelerator.unwrap_model(denoiser), ema, scheduler)
                folder.save_checkpoint(accelerator, run.step)
                if accelerator.is_main_process:
                    write_records(folder, recipe, run, denoiser, accelerator.num_processes, commit, note, command)
                    if snapshot_every and run.step % snapshot_every == 0:
                        folder.snapshot(run.step)
            except (OSError, RuntimeError) as error:
                raise folder.save_error(error, run.step, saved) from None
            saved = run.step
            accelerator.wait_for_everyone()

        # 3. The loop: the maths of the module docstring.
        end = recipe.max_steps if stop_after is None else min(recipe.max_steps, run.step + stop_after)
        bar = tqdm(range(run.step, end), initial=run.step, total=recipe.max_steps, desc=recipe.name,
                   disable=not (progress and accelerator.is_main_process), mininterval=5)
        for step in bar:
            x0, labels = data.batch(step, recipe.batch_size, rank)  # (B, 3, H, W) in [-1, 1], (B, L)
            x0, labels = x0.to(device), labels.to(device)
            g = step_generator(device, recipe.seed, step, rank, NOISE_STREAM)  # on the device, like the data
            noise = torch.randn(x0.shape, generator=g, device=device)  # eps ~ N(0, I)
            t = sample_timesteps(recipe.timestep_sampling, len(x0), scheduler.config.num_train_timesteps, g)
            dropped = torch.rand(len(x0), generator=g, device=device) < recipe.label_dropout
            labels = labels * ~dropped[:, None]  # the null label is all zeros
            x_t = scheduler.add_noise(x0, noise, t)  # sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
            if compile_mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs: the last step's outputs may be reused
            with accelerator.autocast():
                pred = model(x_t, t, labels)  # eps_theta(x_t, t, y)
            loss = diffusion_loss(pred, noise, t, scheduler, recipe.snr_gamma)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, recipe.grad_clip)
            optimizer.step()
            lr_schedule.step()
            optimizer.zero_grad(set_to_none=True)
            ema.step(params)

            run.step, run.loss_sum = step + 1, run.loss_sum + loss.detach()
            if run.step % log_every == 0 or run.step == recipe.max_steps:
                log_loss(run, accelerator, lr_schedule.get_last_lr()[0], time.perf_counter() - started)
                bar.set_postfix(loss=f"{run.history[-1]['loss']:.4f}")
            if run.step % recipe.checkpoint_every == 0 or run.step == end:
                save()
        bar.close()
        return json.loads((output_dir / "training.json").read_text())


def check_train_args(recipe: Recipe, snapshot_every: int, device, log_every: int, compile_mode) -> None:
    """Refuse settings ``train`` cannot honour, before any work."""
    if snapshot_every % recipe.checkpoint_every:
        raise ValueError(f"snapshot_every={snapshot_every} must be a multiple of the recipe's "
                         f"checkpoint_every={recipe.checkpoint_every} (snapshots are taken at checkpoints)")
    if device not in (None, "cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise ValueError(f"device={device!r}: allowed are None (a GPU if there is one), 'cpu', or 'cuda' "
                         f"where a GPU is visible ({'one is' if torch.cuda.is_available() else 'none is'} here)")
    if recipe.timestep_sampling not in TIMESTEP_SAMPLING:
        raise ValueError(f"timestep_sampling={recipe.timestep_sampling!r}; allowed: {', '.join(TIMESTEP_SAMPLING)}")
    if recipe.ema_warmup not in EMA_WARMUP:
        raise ValueError(f"ema_warmup={recipe.ema_warmup!r}; allowed: {', '.join(EMA_WARMUP)}")
    if recipe.label_hidden_dim is not None and recipe.mode not in ("time_sum", "cross_attention"):
        raise ValueError(f"label_hidden_dim={recipe.label_hidden_dim}: recipe {recipe.name!r} ({recipe.mode}) has no "
                         "label MLP with a hidden layer; only the time_sum and cross_attention modes have one")
    if log_every < 1:
        raise ValueError(f"log_every={log_every}: allowed are 1 or more (steps between history entries)")
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode={compile_mode!r}; allowed: {', '.join(map(str, COMPILE_MODES))}")


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
EMA_WARMUP = ("on", "off")  # the EMA's decay grows to ema_decay, or is ema_decay from the first step


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


def log_loss(run: RunState, accelerator, lr: float, seconds: float) -> None:
    """Append a history entry: the mean loss (over steps and processes) since the entry before; one read-back."""
    steps = run.step - (run.history[-1]["step"] if run.history else 0)
    loss = accelerator.reduce(run.loss_sum, reduction="mean").item() / steps
    run.history.append({"step": run.step, "loss": round(loss, 5), "lr": lr, "seconds": round(seconds, 2)})
    run.loss_sum = torch.zeros_like(run.loss_sum)


def resume_settings(recipe: Recipe) -> dict:
    """What a resumed run must keep (``RESUME_SETTINGS``), as this recipe sets it."""
    return {key: getattr(recipe, key) for key in RESUME_SETTINGS}


def check_same_settings(saved: dict, recipe: Recipe, output_dir: Path) -> None:
    """Refuse to resume a run with another batch size, learning rate, seed or model than it started with."""
    for key, value in resume_settings(recipe).items():
        if key not in saved or saved[key] == value:
            continue  # a checkpoint from before that setting was recorded: nothing to compare
        if key in RUN_SETTINGS:
            flag = RUN_SETTINGS[key]
            was, now = (f"{flag} {v}" if v is not None else f"no {flag}" for v in (saved[key], value))
            keep = f"{flag} {saved[key]} (or without {flag})" if saved[key] is not None else f"without {flag}"
            raise ValueError(
                f"{output_dir} was started with {was}; resuming it with {now} would mix two runs (its "
                f"images_seen and reproduction command would be wrong). Resume {keep}, or start over with --fresh")
        raise ValueError(
            f"{output_dir} was started with {key}={saved[key]!r}; recipe {recipe.name!r} has {key}={value!r}, "
            "and resuming would train another model on its weights. Resume it with the recipe it started "
            "with, choose another --out, or start over with --fresh")


def load_checkpoint(accelerator: Accelerator, checkpoint: Path) -> None:
    """``accelerator.load_state(checkpoint)``, with errors that name the folder.

    A checkpoint written before the Denoiser held the UNet and the label encoder as two models
    (``pytorch_model.bin``, ``pytorch_model_1.bin``): their weights are loaded into the Denoiser here,
    everything else (optimiser, EMA, schedule, progress) by Accelerate, whose order is unchanged.
    """
    def load_two_models(models, input_dir):  # Accelerate's load pre-hook: the models it pops are not loaded
        denoiser = accelerator.unwrap_model(models.pop())
        denoiser.unet.load_state_dict(torch.load(checkpoint / "pytorch_model.bin", map_location="cpu"))
        if (checkpoint / "pytorch_model_1.bin").is_file():  # the label encoder of a conditional model
            denoiser.encoder.load_state_dict(torch.load(checkpoint / "pytorch_model_1.bin", map_location="cpu"))

    two_models = (checkpoint / "pytorch_model.bin").is_file()
    hook = accelerator.register_load_state_pre_hook(load_two_models) if two_models else None
    try:
        accelerator.load_state(checkpoint)
    except Exception as error:
        raise OSError(f"cannot resume from {checkpoint}: it is corrupted or from another recipe ({error})") \
            from error
    finally:
        if hook is not None:
            hook.remove()


def load_start(path: str | Path) -> dict:
    """The weights and the record of the pipeline folder a warm restart starts from (``train(init_from=...)``)."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"init_from={str(path)!r} is not a pipeline folder (no model_index.json); give a "
                                "folder such as weights/NAME or a training run's output folder")
    pipe = load_pipeline(path)
    info = json.loads((path / "training.json").read_text()) if (path / "training.json").is_file() else {}
    leg = {key: info[key] for key in ("command", "commit", "hardware", "steps", "images_seen", "train_seconds")
           if key in info}
    if isinstance(info.get("recipe"), dict):
        leg["recipe"] = info["recipe"].get("name")
    leg["digest"] = weights_digest(path)  # the starting weights themselves, whatever folder held them
    return {"pipeline": pipe, "legs": [*info.get("legs", []), leg]}


def warm_start(denoiser: Denoiser, start: dict, path) -> None:
    """Copy the starting pipeline's weights into ``denoiser``; another model's weights are refused, except for
    a wider label MLP, widened so that it computes what the start computed (``widen_label_mlp``)."""
    pipe = start["pipeline"]
    weights = Denoiser(pipe.unet, pipe.label_encoder).state_dict()
    try:
        denoiser.load_state_dict(widen_label_mlp(weights, denoiser.state_dict()))
    except RuntimeError as error:
        raise ValueError(f"init_from={str(path)!r} holds another model than recipe {denoiser.mode!r} builds "
                         f"(mode, size or labels differ): {str(error).splitlines()[0]}") from None


def widen_label_mlp(start: dict, target: dict) -> dict:
    """``start``'s weights, its label MLP's hidden layer widened to ``target``'s if that is wider (Net2Net, Chen
    et al. 2016): the old units copied, the new ones with ``target``'s fresh inputs and zero output weights."""
    w1, b1, w2 = "encoder.mlp.0.weight", "encoder.mlp.0.bias", "encoder.mlp.2.weight"
    if w2 not in start or w2 not in target or not start[w1].shape[0] < target[w1].shape[0] \
            or start[w1].shape[1] != target[w1].shape[1]:
        return start  # no hidden layer, or not a widening: load_state_dict accepts or refuses it as it is
    old = start[w1].shape[0]
    return {**start, w1: torch.cat([start[w1], target[w1][old:]]), b1: torch.cat([start[b1], target[b1][old:]]),
            w2: torch.cat([start[w2], torch.zeros_like(target[w2][:, old:])], dim=1)}


def save_ema_pipeline(folder: RunFolder, denoiser: Denoiser, ema: EMAModel, scheduler: DDPMScheduler) -> None:
    """The EMA weights as a pipeline anyone can load, written from a copy: the training model stays as it is."""
    average = copy.deepcopy(denoiser)
    ema.copy_to(average.parameters())
    pipeline = ConditionalDDPMPipeline(unet=average.unet, scheduler=scheduler, label_encoder=average.encoder)
    folder.save_pipeline(pipeline)  # swapped in file by file: loadable at every moment


def final_loss(history: list[dict], steps: int = 100) -> float | None:
    """The mean loss of the history entries that end in the last ``steps`` steps, each weighted by the steps
    it covers: the mean of the last 100 steps when ``log_every`` divides 100."""
    spans = [(h, h["step"] - before["step"]) for before, h in zip([{"step": 0}, *history], history)]
    recent = [(h["loss"], n) for h, n in spans if h["step"] > history[-1]["step"] - steps] if history else []
    return sum(loss * n for loss, n in recent) / sum(n for _, n in recent) if recent else None


def write_records(folder, recipe, run, denoiser, num_processes, commit, note=None, command=None) -> None:
    """The loss history and the run's summary, each written whole."""
    folder.write_text("history.json", json.dumps(run.history) + "\n")
    summary = {
        "recipe": recipe.to_dict(),
        "steps": run.step,
        "images_seen": run.step * recipe.batch_size * num_processes,
        "train_seconds": round(run.seconds, 1),
        "final_loss": final_loss(run.history),
        "parameters": count_parameters(denoiser),
        "hardware": hardware(),
        "processes": num_processes,
        "commit": commit,
        "torch": torch.__version__,
        "seed": recipe.seed,
    }
    legs = getattr(run, "legs", [])
    if legs:  # a warm restart: the runs before this one, and the images of all of them
        summary["legs"] = legs
        summary["images_seen_total"] = summary["images_seen"] + sum(leg.get("images_seen", 0) for leg in legs)
    if command:
        summary["command"] = command
    if note:
        summary["note"] = note
    folder.write_text("training.json", json.dumps(summary, indent=1) + "\n")
