"""``python -m condiff train-all``: train, score and package every model in one time-boxed call.

    python -m condiff train-all --budget-minutes 8 --out $OUT            # the five notebook models
    python -m condiff train-all --budget-minutes 3 --out $OUT --variants scale_shift,min_snr,wide,attn16
    python -m condiff train-all --budget-minutes 1 --out /tmp/x --quick  # seconds-long, CPU, tiny models
    python -m condiff cards --ship-archive $OUT                          # later, on the maintainer's machine

Issue 8's plan for a GPU session with 15 minutes of device time (10 a call; each start costs one or two):

    # call 1, timeout 300 s: which changes help, at equal images (summary.json's variant_table)
    python -m condiff train-all --budget-minutes 3.5 --variants scale_shift,min_snr,wide,attn16 --out $OUT
    # call 2, timeout 570 s: the five models with the winners
    python -m condiff train-all --budget-minutes 8 --use-variants WINNER[,WINNER] --out $OUT
    # back here, with call 2's files in DIR
    python -m condiff cards --ship-archive DIR && python -m condiff results

Made for a GPU session whose device time is short and whose results come back only as a few files
(at most 8, each under 16 MB): everything lands in ``--out`` as ``summary.json``, ``train-all.log``
and one ``NAME.tar`` per model (the pipeline folder without checkpoint or snapshots, split into
``NAME.tar.partN`` if it is larger than 15 MB), written as each model finishes, so a call killed
at its time limit still returns the models finished so far.

The budget counts from the start of ``train_all``: give the call's time limit minus a minute or so
for the interpreter, imports and CUDA start-up. How it is spent, in order:

1. **Plan.** Time one DDIM-25 scoring pass on an untrained pipeline (seconds per scoring row),
   compare the seconds per image of each UNet with a few eager training steps (relative cost;
   a budget that cannot fit is refused here, before any training), then train the first model
   for a few warm-up steps (``calibration``, about 5% of the budget) and read its images/s from
   ``history.json``. ``--images-per-second`` skips that calibration. The training time left,
   after the scoring estimate and a safety margin, is split by ``SHARES``: the three models that
   notebooks compare (time_sum, concat, time_sum_cosine) get the *same number of steps*; the
   unconditional and cross-attention models get half a share each and are re-planned from the
   measured speed when their turn comes.
2. **Train** each model with ``condiff.train.train`` (its public arguments only), one after the
   other in this process, so each has the whole card: simpler than processes side by side,
   and a small UNet on a large batch fills the GPU alone. The calibration steps lie inside the
   learning-rate warm-up, so resuming from them with the planned ``max_steps`` equals an
   uninterrupted run. Checkpoints every ``max_steps / snapshots`` steps; time_sum and
   time_sum_cosine (every run with ``--variants``) keep EMA snapshots there for the
   accuracy-against-images curve.
3. **Score** each conditional model: guidance sweep at DDIM-25 on test / new_test (``single`` for
   cross-attention), then the sampler table (``condiff.tools.benchmark.sampler_table``: top-k and
   exact-set accuracy; DDPM-1000, 40 times a DDIM-25 pass, at the best guidance only), and store its
   best guidance in its ``model_index.json``; score the snapshots.
4. **Package** the model into ``--out`` and rewrite ``summary.json``. Pipelines with a weights
   file over 15 MB (the ``wide`` variant) are stored in float16 before they are scored
   (``--weights-dtype``), so every returned file stays small and the scores are the shipped weights'.

Run folders and checkpoints stay in ``--work`` (default ``runs/train-all``): the same command run
again on the same machine resumes (finished models are skipped, an interrupted one continues from
its last checkpoint). ``--variants`` instead trains time_sum_cosine and each named variant of it
(``VARIANTS``) for the same number of images and reports accuracy against images
(the recipe comparison of issue 8); ``--use-variants`` applies chosen variants to all five models.
"""
from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from diffusers import DDPMScheduler
from safetensors.torch import load_file, save_file

from .. import WEIGHTS_DIR
from ..evaluate import load_evaluator
from ..models import build_models, predict_noise
from ..pipeline import ConditionalDDPMPipeline, load_pipeline
from ..recipes import Recipe, get_recipe
from ..runinfo import hardware, weight_files, weights_digest
from ..train import train
from .benchmark import _score, sampler_table, training_curve
from .cards import SHIPPED_FILES, ship, store_sampling

MODELS = ("time_sum_cosine", "time_sum", "concat", "cross_attention", "unconditional")
# Changes that the literature reports to speed up learning and binding, compared at equal images by
# ``--variants`` (issue 8): each maps a recipe to the fields it changes.
VARIANTS = {
    "scale_shift": lambda r: {"time_scale_shift": "scale_shift"},  # adaptive group norm (Dhariwal & Nichol)
    "min_snr": lambda r: {"snr_gamma": 5.0},  # Min-SNR-gamma weighting (Hang et al. 2023)
    "wide": lambda r: {"block_out_channels": tuple(8 * round(c * 4 / 3 / 8) for c in r.block_out_channels)},
    "attn16": lambda r: {"attention_levels": min(2, len(r.block_out_channels))},  # self-attention at 16x16 too
}
COMPARED = ("time_sum_cosine", "time_sum", "concat")  # one image count: notebooks 3 vs 4 vs 5
SHARES = {"time_sum_cosine": 1.0, "time_sum": 1.0, "concat": 1.0, "cross_attention": 0.5, "unconditional": 0.5}
SAMPLERS = (("ddim", 50), ("ddim", 25), ("dpm++", 25), ("dpm++", 10), ("ddpm", 1000))
GUIDANCE_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
LONG_SAMPLER = 100  # samplers of more steps (DDPM-1000) are scored at the best guidance only
CURVE_GUIDANCE = 2.0  # the snapshot curves' guidance (as in weights/training_curves.json)
PART_BYTES = 15_000_000  # every returned file stays under 16 MB
QUICK = dict(image_size=16, block_out_channels=(8, 16), batch_size=8, warmup_steps=2)

log = logging.getLogger("condiff.train_all")


# ---------------------------------------------------------------------------------------------
# Small helpers: clock, JSON, logging
# ---------------------------------------------------------------------------------------------

class Clock:
    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.monotonic(), budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def _write_json(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)  # a call killed mid-write leaves the previous version


def _start_log(out: Path) -> list[logging.Handler]:
    handlers = [logging.FileHandler(out / "train-all.log"), logging.StreamHandler(sys.stderr)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handlers


# ---------------------------------------------------------------------------------------------
# 1. Plan
# ---------------------------------------------------------------------------------------------

def variant(recipe: Recipe, *names: str) -> Recipe:
    """``recipe`` with the changes of ``VARIANTS[name]`` for each name."""
    for name in names:
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
        recipe = replace(recipe, **VARIANTS[name](recipe))
    return recipe


def runs_to_train(models, variants, use_variants, quick, overrides) -> dict[str, Recipe]:
    """``{run name: recipe}``: the notebook models, or time_sum_cosine and its variants (``variants``)."""
    def prepare(recipe: Recipe) -> Recipe:
        recipe = variant(recipe, *use_variants)
        if quick:
            recipe = recipe.with_overrides(**QUICK)
        return recipe.with_overrides(**overrides)

    if variants:
        base = prepare(get_recipe("time_sum_cosine"))
        return {"base": base, **{v: variant(base, v) for v in variants}}
    return {name: prepare(get_recipe(name)) for name in models}


def eager_seconds_per_image(recipes: dict[str, Recipe], device: str, steps: int = 2, rounds: int = 2) -> dict:
    """Seconds per training image of each run's models (eager forward + backward, no optimiser).

    A rough speed, and the *relative* cost of each run against the first. Runs with the same model
    share one measurement; each is the best of ``rounds`` timings.
    """
    def key(r: Recipe) -> str:
        return json.dumps([r.mode, r.model_kwargs(), r.batch_size], default=str)

    seconds = {}
    for _ in range(rounds):
        for r in recipes.values():
            seconds[key(r)] = min(seconds.get(key(r), math.inf), _seconds_per_image(r, device, steps))
    return {name: seconds[key(r)] for name, r in recipes.items()}


def _seconds_per_image(r: Recipe, device: str, steps: int) -> float:
    """Seconds per image of a training step (forward + backward, no optimiser) of the recipe's models."""
    torch.manual_seed(0)
    unet, encoder = build_models(r.mode, **r.model_kwargs(), max_objects=r.max_objects)
    unet, encoder = unet.to(device), encoder.to(device) if encoder is not None else None
    batch = r.batch_size if device != "cpu" else min(r.batch_size, 16)
    x = torch.randn(batch, 3, r.image_size, r.image_size, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    labels = torch.zeros(batch, 24, device=device)
    labels[:, 1] = 1
    for i in range(steps + 1):  # the first step warms up
        if i == 1:
            _sync(device)
            tick = time.perf_counter()
        pred = predict_noise(unet, encoder, x, t, labels if encoder is not None else None)
        pred.float().square().mean().backward()
    _sync(device)
    return (time.perf_counter() - tick) / (steps * batch)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seconds_per_row(recipe: Recipe, device: str, limit: int | None) -> float:
    """Wall seconds of one scoring row (DDIM-25, guided, test + new_test) on an untrained pipeline."""
    unet, encoder = build_models("time_sum", **recipe.model_kwargs())
    pipe = ConditionalDDPMPipeline(unet=unet, scheduler=DDPMScheduler(), label_encoder=encoder).to(device)
    pipe.set_progress_bar_config(disable=True)
    evaluator = load_evaluator()
    _score(pipe, "ddim", 2, CURVE_GUIDANCE, evaluator, limit=1)  # warm-up (kernels, cuDNN autotuning)
    tick = time.perf_counter()
    _score(pipe, "ddim", 25, CURVE_GUIDANCE, evaluator, limit=limit)
    return time.perf_counter() - tick


def scoring_rows(conditional: float, curves: int, snapshots: int, guidance_scales, samplers) -> float:
    """Scoring work in DDIM-25 rows (test + new_test): sweep + sampler table (at w = 1 and the best w; long
    samplers at the best w only) per conditional model (one-split models count half), + snapshot curves."""
    table = sum(steps / 25 * (1 if steps > LONG_SAMPLER else 2) for _, steps in samplers)
    return conditional * (len(guidance_scales) + table) + curves * snapshots


def calibrate(name: str, recipe: Recipe, run_dir: Path, steps: int, train_options: dict) -> dict:
    """Train the first ``steps`` warm-up steps of a run; its images/s and the overhead of a training call.

    The speed comes from the later half of ``history.json`` (past compilation and autotuning) when it
    has two entries there, else from the whole call (slower: the plan errs on the safe side).
    """
    done = json.loads((run_dir / "training.json").read_text())["steps"] if (run_dir / "training.json").is_file() else 0
    tick = time.perf_counter()
    info = train(recipe, run_dir, stop_after=steps, progress=False, **train_options)
    wall = time.perf_counter() - tick
    images = (info["steps"] - done) * recipe.batch_size  # this call's (a killed call may have begun the run)
    history = [h for h in json.loads((run_dir / "history.json").read_text()) if "seconds" in h and h["step"] > done]
    later = history[len(history) // 2:]
    if len(later) >= 2 and later[-1]["seconds"] > later[0]["seconds"]:
        rate = (later[-1]["step"] - later[0]["step"]) * recipe.batch_size / (later[-1]["seconds"] - later[0]["seconds"])
    else:
        rate = images / wall
    overhead = max(0.0, wall - images / rate)
    log.info(f"calibration on {name}: {info['steps']} steps in {wall:.1f} s: {rate:,.0f} images/s, "
             f"{overhead:.1f} s per training call besides the steps")
    return {"images_per_second": rate, "call_overhead_s": overhead, "steps": info["steps"], "wall_s": round(wall, 2)}


def steps_for(seconds: float, names, recipes, plan) -> int:
    """Steps each of ``names`` (trained for the same steps) can take in ``seconds`` of wall time in all."""
    rate, overhead = plan["images_per_second"], plan["call_overhead_s"]
    batch = recipes[names[0]].batch_size
    per_step = sum(plan["relative_cost"][n] for n in names) * batch / rate  # seconds per step, all of names
    return int(max(0.0, seconds - overhead * len(names)) / per_step)


# ---------------------------------------------------------------------------------------------
# 2-4. Train, score, package
# ---------------------------------------------------------------------------------------------

def _train_run(recipe, run_dir, steps, snapshots, curve, note, command, train_options) -> dict:
    every = max(1, steps // snapshots)  # the plan makes steps a multiple: the last snapshot is the final model
    recipe = recipe.with_overrides(max_steps=steps, checkpoint_every=every)
    tick = time.perf_counter()
    info = train(recipe, run_dir, snapshot_every=every if curve else 0, note=note, progress=False,
                 command=command, **train_options)
    return {"training": info, "wall_s": round(time.perf_counter() - tick, 1)}


def _score_run(name, run_dir, o: Options, table: bool, curve: bool) -> dict:
    """Sampler table (guidance sweep first) and stored best guidance, and/or the snapshot curve."""
    result = {}
    if table:
        both = tuple(s for s in o.samplers if s[1] <= LONG_SAMPLER)  # at w = 1 and the best w
        scores = sampler_table(run_dir.parent, names=[name], guidance_scales=o.guidance_scales, samplers=both,
                               device=o.device, limit=o.limit)
        entry = scores["models"][name]
        pipe, evaluator = load_pipeline(run_dir).to(o.device), load_evaluator()
        for sampler, steps in o.samplers:
            if steps > LONG_SAMPLER:  # DDPM-1000 costs 40 DDIM-25 rows: at the best w only
                entry["samplers"].append(_score(pipe, sampler, steps, entry["best_guidance"], evaluator, o.limit))
        scores["digests"][name] = weights_digest(run_dir)  # the shipped files' digest, not the snapshots'
        store_sampling(run_dir, entry["best_guidance"], "ddim", 25)
        result.update(samplers=scores, best_guidance=entry["best_guidance"])
    if curve:
        result["curve"] = training_curve(run_dir, guidance_scale=CURVE_GUIDANCE, steps=25, device=o.device,
                                         limit=o.limit)
    return result


def to_fp16(run_dir: Path) -> None:
    """Store the pipeline's weights in float16 (half the bytes); they load back into float32 models."""
    for path in weight_files(run_dir):
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(path).items()}
        save_file(tensors, path.with_suffix(".tmp"), metadata={"format": "pt"})
        os.replace(path.with_suffix(".tmp"), path)


def pack(run_dir: Path, name: str, out: Path) -> list[str]:
    """The pipeline folder (no checkpoint, no snapshots) as ``out/NAME.tar``, split below 15 MB a file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for item in SHIPPED_FILES:
            if (run_dir / item).exists():
                tar.add(run_dir / item, arcname=f"{name}/{item}")
    data = buffer.getvalue()
    for old in out.glob(f"{name}.tar*"):
        old.unlink()
    if len(data) <= PART_BYTES:
        files = {f"{name}.tar": data}
    else:
        files = {f"{name}.tar.part{i}": data[start:start + PART_BYTES]
                 for i, start in enumerate(range(0, len(data), PART_BYTES))}
    for file, chunk in files.items():
        tmp = out / (file + ".tmp")
        tmp.write_bytes(chunk)
        os.replace(tmp, out / file)
    return list(files)


@dataclass
class Options:
    """What ``train_all`` was asked for (see its docstring), with the quick-mode defaults filled in."""

    out: Path
    budget_minutes: float
    work: Path = Path("runs/train-all")
    quick: bool = False
    models: tuple[str, ...] = MODELS
    variants: tuple[str, ...] = ()
    use_variants: tuple[str, ...] = ()
    images_per_second: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    guidance_scales: tuple[float, ...] | None = None
    samplers: tuple[tuple[str, int], ...] | None = None
    snapshots: int | None = None
    limit: int | None = None
    margin: float = 0.1
    weights_dtype: str = "auto"  # float32, float16, or auto: float16 for pipelines with a file over 15 MB
    fresh: bool = False
    train_options: dict = field(default_factory=dict)
    command: str = ""
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")

    def __post_init__(self):
        self.out, self.work = Path(self.out), Path(self.work)
        self.guidance_scales = tuple(self.guidance_scales or ((1.0, 3.0) if self.quick else GUIDANCE_SCALES))
        self.samplers = tuple(self.samplers or ((("ddim", 5),) if self.quick else SAMPLERS))
        self.snapshots = self.snapshots or (2 if self.quick else 4)
        for name in self.models:
            if name not in MODELS:
                raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
        for name in [*self.variants, *self.use_variants]:
            if name not in VARIANTS:
                raise ValueError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
        if self.weights_dtype not in ("auto", "float32", "float16"):
            raise ValueError(f"unknown weights dtype {self.weights_dtype!r}; allowed: auto, float32, float16")
        if self.budget_minutes <= 0 or self.snapshots < 1 or not 0 <= self.margin < 1:
            raise ValueError("need --budget-minutes > 0, --snapshots >= 1 and 0 <= --margin < 1")
        if self.out.resolve() == self.work.resolve() or self.work.resolve() in self.out.resolve().parents:
            raise ValueError(f"--out {self.out} must not be inside --work {self.work}: it gets only the files "
                             "that come back")


def train_all(out: str | Path, budget_minutes: float, **options) -> dict:
    """Train, score and package every run of the plan into ``out``; returns the summary (``out/summary.json``).

    Options are the fields of ``Options``, e.g. ``quick=True``: tiny models for ``max_steps``
    (default 4) steps whatever the budget, 2 snapshots, guidance 1 and 3, DDIM-5 as the sampler
    table, the CPU smoke run of the whole path. ``train_options`` go to every ``train()`` call
    (for instance ``{"log_every": 10}``).
    """
    clock = Clock(budget_minutes * 60)
    o = Options(out, budget_minutes, **options)  # checks everything before any work
    if o.fresh and o.work.exists():
        shutil.rmtree(o.work)
    o.out.mkdir(parents=True, exist_ok=True)
    (o.work / "runs").mkdir(parents=True, exist_ok=True)
    handlers = _start_log(o.out)
    try:
        return _train_all(o, clock)
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()


def _train_all(o: Options, clock: Clock) -> dict:
    overrides = {"batch_size": o.batch_size, "learning_rate": o.learning_rate}
    recipes = runs_to_train(o.models, o.variants, o.use_variants, o.quick, overrides)
    compared = [n for n in recipes if o.variants or n in COMPARED]  # trained for one shared step count
    curves = list(recipes) if o.variants else [n for n in compared if n != "concat"]
    conditional = [n for n, r in recipes.items() if r.mode != "unconditional" and not o.variants]
    key = {"recipes": {n: r.to_dict() for n, r in recipes.items()}, "quick": o.quick, "snapshots": o.snapshots}
    key = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    summary_path, state_path = o.out / "summary.json", o.work / "summary.json"
    summary = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if summary and summary.get("plan_key") != key:
        raise ValueError(f"{o.work} holds runs of other settings: pass --fresh to start over or another --work")
    summary.update(command=o.command, hardware=hardware(), device=o.device, budget_minutes=o.budget_minutes,
                   plan_key=key, mode="variants" if o.variants else "models", finished=False)
    summary.setdefault("timeline", [])
    summary.setdefault("runs", {})

    def save(event: str) -> None:
        summary["timeline"].append({"seconds": round(clock.elapsed(), 1), "event": event})
        log.info(f"[{clock.elapsed():6.0f} s] {event}")
        _write_json(summary, state_path)
        _write_json(summary, summary_path)

    save(f"start: {len(recipes)} runs ({', '.join(recipes)}) on {hardware()}, budget {o.budget_minutes:g} min")

    # 1. Plan (once: a resumed call keeps the first call's plan).
    plan = summary.get("plan")
    if plan is None:
        first = next(iter(recipes))
        eager = eager_seconds_per_image(recipes, o.device)
        plan = {"relative_cost": {n: round(s / eager[first], 3) for n, s in eager.items()},
                "row_seconds": seconds_per_row(recipes[first], o.device, o.limit)}
        rows = scoring_rows(_weight(conditional, recipes), len(curves), o.snapshots, o.guidance_scales, o.samplers)
        plan["scoring_rows"], plan["scoring_seconds"] = round(rows, 1), round(rows * plan["row_seconds"], 1)
        plan["margin_seconds"] = round(o.margin * clock.budget_s + (0 if o.quick else 15), 1)
        share = sum(SHARES.get(n, 1.0) for n in compared) / sum(SHARES.get(n, 1.0) for n in recipes)
        batch = recipes[first].batch_size
        # Calibrate inside the LR warm-up, for about 5% of the budget at the eager speed.
        calib = 1 if o.quick else max(10, min(150, recipes[first].warmup_steps,
                                              int(0.05 * clock.budget_s / (eager[first] * batch))))
        # A first check at the eager speed (optimistic: no optimiser, no overhead), before any training.
        rough = dict(plan, images_per_second=1 / eager[first], call_overhead_s=0.0)
        _check_budget(o, clock.left() - plan["scoring_seconds"] - plan["margin_seconds"], share, compared, recipes,
                      rough, calib)
        if o.images_per_second:
            plan.update(images_per_second=o.images_per_second, call_overhead_s=0.0 if o.quick else 15.0)
        else:
            plan["calibration"] = calibrate(first, recipes[first], o.work / "runs" / first, calib, o.train_options)
            plan.update({k: plan["calibration"][k] for k in ("images_per_second", "call_overhead_s")})
        training = clock.left() - plan["scoring_seconds"] - plan["margin_seconds"]
        steps = _check_budget(o, training, share, compared, recipes, plan, calib)
        steps = (o.max_steps or 4) if o.quick else min(steps, o.max_steps or math.inf)
        plan["steps"] = dict.fromkeys(compared, _whole_snapshots(steps, o.snapshots))
        plan["training_seconds"] = round(training, 1)
        summary["plan"] = plan
        save(f"plan: {plan['relative_cost']} relative cost, {plan['images_per_second']:,.0f} images/s, "
             f"{plan['scoring_seconds']:.0f} s scoring ({plan['row_seconds']:.2f} s a row), "
             f"{training:.0f} s training; compared runs: {steps} steps of {recipes[compared[0]].batch_size}")

    # 2-4. Train, score and package each run; a run that fails is logged and the others go on.
    for name, recipe in recipes.items():
        record = summary["runs"].setdefault(name, {})
        if record.get("done"):
            continue
        if name not in plan["steps"]:  # its share of what is left, at the speed measured so far
            rest = [n for n in recipes if not summary["runs"].get(n, {}).get("done") and n not in compared]
            left_rows = scoring_rows(_weight([n for n in rest if n in conditional], recipes), 0, o.snapshots,
                                     o.guidance_scales,
                                     o.samplers)
            seconds = clock.left() - left_rows * plan["row_seconds"] - plan["margin_seconds"]
            seconds *= SHARES.get(name, 1.0) / sum(SHARES.get(n, 1.0) for n in rest)
            steps = steps_for(seconds, [name], recipes, plan)
            if not o.quick and steps < o.snapshots:
                save(f"{name}: no time left ({seconds:.0f} s), not trained")
                continue
            steps = (o.max_steps or 4) if o.quick else min(steps, o.max_steps or math.inf)
            plan["steps"][name] = _whole_snapshots(steps, o.snapshots)
        try:
            _run(name, recipe, record, o, plan, summary, conditional, curves, save)
        except Exception as error:  # noqa: BLE001 - one failed run must not lose the others' device time
            record["error"] = f"{type(error).__name__}: {error}"
            log.exception(f"{name} failed")
            save(f"{name}: failed ({record['error']}); going on with the next run")

    if o.variants:
        summary["variant_changes"] = {v: VARIANTS[v](recipes["base"]) for v in o.variants}
        summary["variant_table"] = variant_table(summary.get("curves", {}))
        log.info("accuracy against images (DDIM-25, w = 2, top-k and exact-set):\n" + summary["variant_table"])
    summary["finished"] = True
    summary["files"] = sorted(p.name for p in o.out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    save(f"finished in {clock.elapsed() / 60:.1f} of {o.budget_minutes:g} min; files: {', '.join(summary['files'])}")
    big = [p.name for p in o.out.iterdir() if p.is_file() and p.stat().st_size > 16e6]
    if big or len(summary["files"]) > 8:
        log.warning(f"more than 8 files or files over 16 MB in {o.out}: {big or summary['files']}")
    return summary


def _whole_snapshots(steps: int, snapshots: int) -> int:
    """``steps`` rounded down to a multiple of ``snapshots`` (checkpoints fall evenly, the last one at the end)."""
    return steps // snapshots * snapshots if steps >= snapshots else steps


def _weight(names, recipes) -> float:
    """Scoring weight of conditional runs: 1 for test + new_test, 0.5 for one-object models (``single`` only)."""
    return sum(0.5 if recipes[n].max_objects == 1 else 1.0 for n in names)


def _check_budget(o: Options, training: float, share: float, compared, recipes, plan, calib: int) -> int:
    """Steps of the compared runs that ``training`` seconds allow; an error if too few for the snapshots."""
    steps = steps_for(training * share, compared, recipes, plan)
    if not o.quick and steps < o.snapshots * (calib + 1):  # the first snapshot comes after the calibration
        raise ValueError(f"a budget of {o.budget_minutes:g} min leaves {training:.0f} s of training, {steps} steps "
                         f"at {plan['images_per_second']:,.0f} images/s: not enough for {len(recipes)} runs with "
                         f"scoring ({plan['scoring_seconds']:.0f} s estimated); give more minutes, fewer --models, "
                         "fewer --samplers or a smaller --batch-size")
    return steps


def _run(name, recipe, record, o: Options, plan, summary, conditional, curves, save) -> None:
    """Train one run to its planned steps, score it, package it; record everything in the summary."""
    run_dir = o.work / "runs" / name
    note = (f"python -m condiff train-all ({'variant comparison' if o.variants else 'five models'}, "
            f"one process, runs one after the other: the whole {hardware()} for each)")
    record.pop("error", None)
    command = f"{o.command or 'python -m condiff train-all'} [run {name}: {plan['steps'][name]} steps]"
    record.update(_train_run(recipe, run_dir, plan["steps"][name], o.snapshots, name in curves, note, command,
                             o.train_options))
    info = record["training"]
    achieved = info["images_seen"] / max(record["wall_s"] - plan["call_overhead_s"], 1e-6)
    plan.setdefault("measured_images_per_second", {})[name] = round(achieved, 1)
    plan["images_per_second"] = achieved / plan["relative_cost"][name]  # the first run's speed, measured again
    save(f"{name}: trained {info['steps']} steps ({info['images_seen']:,} images) in {record['wall_s']:.0f} s")
    largest = max(p.stat().st_size for p in weight_files(run_dir))
    if o.weights_dtype == "float16" or (o.weights_dtype == "auto" and largest > PART_BYTES):
        to_fp16(run_dir)  # before scoring: the scores are those of the weights that ship
        record["weights_dtype"] = "float16"
        save(f"{name}: weights stored in float16 (largest file {largest / 1e6:.1f} MB in float32)")
    record.update(_score_run(name, run_dir, o, table=name in conditional, curve=name in curves))
    if "samplers" in record:
        _merge_samplers(summary, record.pop("samplers"))
    if "curve" in record:
        summary.setdefault("curves", {})[name] = record.pop("curve")
    if not o.variants:
        record["files"] = pack(run_dir, name, o.out)
    gc.collect()  # the run's models and optimiser, before the next run takes the card
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    record["done"] = True
    save(f"{name}: scored{'' if o.variants else ' and packed'}"
         + (f", best guidance {record['best_guidance']:g}" if "best_guidance" in record else ""))


def _merge_samplers(summary: dict, table: dict) -> None:
    """Collect each model's sampler table in the format of ``weights/samplers.json``."""
    merged = summary.setdefault("samplers", {k: v for k, v in table.items() if k not in ("digests", "models")})
    merged["measured_by"] = ("python -m condiff train-all: condiff.tools.benchmark.sampler_table on each run "
                             "folder right after its training (DDPM-1000 at the best guidance only), one process "
                             "on the card")
    merged.setdefault("digests", {}).update(table["digests"])
    merged.setdefault("models", {}).update(table["models"])


def variant_table(curves: dict[str, list[dict]]) -> str:
    """Markdown: per snapshot (images seen), each variant's test / new_test top-k and exact-scene accuracy."""
    names = list(curves)
    if not names:
        return ""
    lines = ["| images seen | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, row in enumerate(curves[names[0]]):
        cells = []
        for name in names:
            r = curves[name][i] if i < len(curves[name]) else None
            cells.append("-" if r is None else f"{r['test']:.3f} / {r['new_test']:.3f} "
                                               f"(exact-scene {r['test_exact_scene']:.3f} / "
                                               f"{r['new_test_exact_scene']:.3f})")
        lines.append(f"| {row['images_seen']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Shipping what came back
# ---------------------------------------------------------------------------------------------

def unpack(out: str | Path, target: str | Path) -> list[Path]:
    """Extract every ``NAME.tar`` (or its parts) of a train-all folder into ``target``; returns the folders."""
    out, target = Path(out), Path(target)
    summary = json.loads((out / "summary.json").read_text())
    folders = []
    for name, record in summary["runs"].items():
        files = record.get("files")
        if not files:
            continue
        data = b"".join((out / f).read_bytes() for f in files)  # parts in order: part0, part1, ...
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(target, filter="data")  # no absolute paths or links out of target
        folders.append(target / name)
    return folders


def ship_archive(out: str | Path, weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Ship the models of a train-all folder into ``weights/``: pipelines (with their stored guidance),
    ``samplers.json`` and ``training_curves.json``; the caller then writes the cards."""
    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    if summary.get("mode") != "models":
        raise ValueError(f"{out} holds a variant comparison, not models to ship")
    shipped = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in unpack(out, tmp):
            ship(folder, folder.name, weights_dir)
            shipped.append(folder.name)
    samplers = summary.get("samplers")
    if samplers:
        for name, digest in samplers["digests"].items():
            if name in shipped and weights_digest(weights_dir / name) != digest:
                raise OSError(f"weights/{name} differs from the run its sampler table measured")
        _write_json(samplers, weights_dir / "samplers.json")
    if summary.get("curves"):
        path = weights_dir / "training_curves.json"
        curves = json.loads(path.read_text()) if path.is_file() else {}
        curves.update(measured_by=f"python -m condiff train-all: condiff.tools.benchmark.training_curve on the runs' "
                                  f"snapshots, DDIM-25, w = {CURVE_GUIDANCE:g}", curves=summary["curves"])
        _write_json(curves, path)
    return shipped
