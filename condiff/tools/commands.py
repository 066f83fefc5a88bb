"""Command line: ``python -m condiff COMMAND ...`` (``--help`` on each). The readers' commands: train, sample, evaluate.

    python -m condiff train time_sum --out runs/time_sum
    python -m condiff sample --weights weights/time_sum --labels "red cube,blue sphere" --out grid.png
    python -m condiff evaluate --weights weights/time_sum --split new_test

``--labels`` takes objects separated by commas and scenes by semicolons:
``"red cube,blue sphere;gray cylinder"`` is two images. ``--labels-file`` takes a JSON list of
object lists, the format of i-CLEVR's ``test.json``. The maintainers' commands below are added by
``condiff.tools.cli``; ``python -m condiff`` has them all. The commands are a front end over the
library (``condiff.train``, ``condiff.pipeline``, ``condiff.evaluate``): everything they do, a notebook can do.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from diffusers.utils import make_image_grid
from PIL import Image
from tqdm import tqdm

from .. import WEIGHTS_DIR
from ..data.iclevr import load_split
from ..data.labels import MAX_OBJECTS, OBJECTS, names_to_multihot, parse_objects, shorten
from ..evaluate import evaluate, load_evaluator
from ..models import LabelEncoder
from ..pipeline import SCHEDULERS, load_pipeline, make_scheduler
from ..plotting import image_grid
from ..recipes import RECIPES, get_recipe
from ..runfolder import RunFolder, file_in_the_way, latest_checkpoint, set_aside, shipped_reason
from ..train import COMPILE_MODES, EMA_WARMUP, RUN_SETTINGS, TIMESTEP_SAMPLING, train

PROG = "python -m condiff"
TRAIN_FLAGS = {"max_steps": "--max-steps", **RUN_SETTINGS}  # what changes what a run learns: its reproduction command


# ---------------------------------------------------------------------------------------------
# Option checks: each runs before any work and says what was given and what is allowed
# ---------------------------------------------------------------------------------------------

MAX_GUIDANCE = 50.0  # w weights eps(label) - eps(null); images saturate by w ~ 10, and NaN/inf give black or noise
SAMPLE_SEEDS = 2**64  # what torch.Generator.manual_seed accepts (negative seeds would wrap onto others)
TRAIN_SEEDS = 2**32  # --seed's range; training keys each step's generators by (seed, step, rank): scenes.step_generator
GRID_CAPTIONS = 64  # a captioned grid up to this many images; an uncaptioned mosaic beyond
PART_IMAGES = 1024  # a mosaic file holds at most this many images; more are written in parts, each when full
LONG_WORK_SECONDS = 180  # sample and evaluate say how long they will take when it is longer than this
PROBE_IMAGE_STEPS = 2_000  # image x denoising steps below which the work is never long: no timing step is run
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pdf", ".svg", ".eps", ".ps"}


def whole(low: int, high: int | None = None, why: str = ""):
    """An argparse ``type``: a whole number from ``low`` to ``high`` (inclusive)."""
    if high is None:
        allowed = f"a whole number >= {low:,}"
    else:  # 2**64 - 1 reads better than 18,446,744,073,709,551,615
        top = f"2**{high.bit_length()} - 1" if high > 2**16 and not high & (high + 1) else f"{high:,}"
        allowed = f"a whole number from {low:,} to {top}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}{why}; got {shorten(text)!r}")
        return value

    return parse


def number(low: float, high: float, why: str = "", low_open: bool = False):
    """An argparse ``type``: a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be a finite number in {bracket}{low:g}, {high:g}]{why}; "
                                             f"got {shorten(text)!r}")
        return value

    return parse


class Parser(argparse.ArgumentParser):
    """argparse, with echoed input cut short (an invalid choice may be 100 KB of text)."""

    def error(self, message: str):
        super().error(shorten(message, 600))


def writable_file(path: Path, option: str) -> None:
    """Create ``path`` (and its folder) now, so an unusable output fails before any work; leave nothing new."""
    existed = path.exists()
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise OSError(f"cannot write {option} {shorten(str(path))}: {shorten(str(blocker))} is a file, not a folder")
    if path.is_dir():
        raise OSError(f"cannot write {option} {shorten(str(path))}: it is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as error:
        raise OSError(f"cannot write {option} {shorten(str(path))}: {error.strerror or error}") from None
    if not existed:
        path.unlink()


def png_path(text: str) -> tuple[Path, str]:
    """``sample --out`` -> the PNG file to write and a note on how it was read from ``text``.

    ``grid`` -> ``grid.png``; a folder (existing, or written with a trailing slash) -> ``FOLDER/samples.png``.
    """
    path = Path(text)
    if not text.strip():
        raise ValueError("--out is empty; give a .png file or a folder, e.g. --out samples.png")
    if text.endswith(("/", "\\")) and path.exists() and not path.is_dir():
        raise ValueError(f"--out {shorten(text)} names a folder, but {shorten(str(path))} is a file; give a .png "
                         "file or a folder")
    if text.endswith(("/", "\\")) or path.is_dir():
        return path / "samples.png", f" (--out {shorten(text)} is a folder: wrote samples.png inside it)"
    if path.suffix.lower() == ".png":
        return path, ""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"--out {shorten(text)}: sample writes PNG files only; give a name ending in .png")
    return path.with_name(path.name + ".png"), f" (--out {shorten(text)} had no .png suffix: added it)"


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

def _cases(args, pipe) -> list[list[str]] | None:
    """The scenes of ``--labels`` / ``--labels-file``, checked against the model's vocabulary."""
    labels, labels_file = args.labels, args.labels_file
    if labels is not None and labels_file is not None:
        raise ValueError("give --labels or --labels-file, not both")
    if labels_file is not None:
        cases, given = load_split(labels_file_path(labels_file)), f"--labels-file {shorten(labels_file)}"
    elif labels is not None:
        cases, given = [parse_objects(scene) for scene in labels.split(";") if scene.strip()], "--labels"
        if not cases:
            raise ValueError(f"--labels {shorten(labels)!r} holds no scenes; write objects separated by commas "
                             'and scenes by semicolons, e.g. --labels "red cube,blue sphere;gray cylinder"')
    else:
        return None
    config = pipe.label_encoder.config if isinstance(pipe.label_encoder, LabelEncoder) else None
    names, most = (config.label_names, config.max_objects) if config is not None else (OBJECTS, MAX_OBJECTS)
    for i, case in enumerate(cases):
        try:
            names_to_multihot(case, names, most)
        except ValueError as error:
            raise ValueError(f"{given}, scene {i}: {error}") from None
    if config is None:
        print(f"warning: this model is unconditional: it ignores {given} ({len(cases)} valid scenes) and draws "
              "--num-images images in all", file=sys.stderr)
    return cases


def labels_file_path(text: str) -> Path:
    """``--labels-file``: the path of an existing file (a split name is not a path here)."""
    path = Path(text)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"--labels-file takes the path of a JSON file (a list of object lists, like "
                                f"condiff/data/splits/test.json); {shorten(text)} {what}")
    return path


def estimate_seconds(pipe, first_batch, steps: int, batches: int, conditional: bool, kwargs: dict) -> float | None:
    """Seconds that ``batches`` batches of ``steps`` denoising steps will take here, from one timed step of the
    first batch (its own random stream); ``None`` when the work is too small to be long."""
    if len(first_batch) * steps * batches < PROBE_IMAGE_STEPS:
        return None
    probe = {**kwargs, "num_inference_steps": 1, "generator": torch.Generator().manual_seed(0), "output_type": "pt"}
    start = time.perf_counter()
    pipe(first_batch, **probe) if conditional else pipe(batch_size=len(first_batch), **probe)
    return (time.perf_counter() - start) * steps * batches


def say_how_long(what: str, images: int, steps: int, batches: int, seconds: float | None, extra: str = "") -> None:
    """One line before long work: how much, and about how long."""
    if seconds is None or seconds <= LONG_WORK_SECONDS:
        return
    hours = seconds / 3600
    took = f"{hours:,.1f} hours" if hours >= 1 else f"{seconds / 60:.0f} minutes"
    print(f"{what} {images:,} images, {steps} denoising steps each, in {batches:,} batches: about {took} on this "
          f"machine (timed on one step){extra}; Ctrl-C stops it", flush=True)


def train_command(args, max_steps: int) -> str:
    """The command that repeats this training run: the recipe, the total steps and every setting given.
    An absolute ``--init-from`` keeps only its last two parts (no machine's paths in shipped records; the
    starting weights are identified by their digest in ``training.json``'s ``legs``)."""
    given = {**{key: getattr(args, key) for key in TRAIN_FLAGS}, "max_steps": max_steps}
    words = [PROG, "train", args.recipe,
             *(f"{TRAIN_FLAGS[key]} {value}" for key, value in given.items() if value is not None)]
    if getattr(args, "init_from", None):
        start = Path(args.init_from)
        words.append(f"--init-from {start if not start.is_absolute() else Path('...', *start.parts[-2:])}")
    return " ".join(words)


def keep_run_settings(args, out: Path) -> None:
    """Resuming: the settings not given on the command line are the run's own (from its training.json)."""
    path = out / "training.json"
    if args.fresh or not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())["recipe"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # train() reads the checkpoint itself and says what does not match
    default = get_recipe(args.recipe)
    for key in RUN_SETTINGS:
        if getattr(args, key) is None and key in saved and saved[key] != getattr(default, key):
            setattr(args, key, saved[key])


def launched_main_process() -> bool:
    """True in a plain run and in the main process of ``accelerate launch`` (RANK 0): the one that checks the
    run folder before any work. Read from the environment because no Accelerator exists yet; ``train()``
    makes the same choice with its Accelerator (``RunFolder(lock=accelerator.is_main_process)``)."""
    return os.environ.get("RANK", "0") == "0"


def train_out(args) -> Path:
    return Path(args.out or f"runs/{args.recipe}")


def cmd_train(args) -> None:
    out = train_out(args)
    if launched_main_process():  # the others would see its half-made folder; refused before any work
        RunFolder(out, args.overwrite_shipped).check()
    keep_run_settings(args, out)
    recipe = get_recipe(args.recipe).with_overrides(**{key: getattr(args, key) for key in TRAIN_FLAGS})
    checkpoint = None if args.fresh else latest_checkpoint(out)
    done = int(checkpoint.name.rpartition("-")[2]) if checkpoint is not None else 0
    if done > recipe.max_steps:
        raise ValueError(f"{out} already holds {done:,} steps, past --max-steps {recipe.max_steps:,}: nothing to "
                         "train. Give a larger --max-steps to go on, --fresh to start over, or another --out")
    if args.fresh and launched_main_process():
        args.set_aside = set_aside(out)  # the old run whole, elsewhere: never its records beside new weights
        if args.set_aside:
            print(f"--fresh: moved the previous run to {args.set_aside}; delete it once you no longer need it")
    summary = train(recipe, out, resume=not args.fresh, stop_after=args.stop_after,
                    snapshot_every=args.snapshot_every, note=args.note,
                    command=train_command(args, recipe.max_steps), log_every=args.log_every,
                    compile_mode=args.compile, device=args.device, overwrite_shipped=args.overwrite_shipped,
                    init_from=args.init_from)
    if done and done == recipe.max_steps:  # train() checked the run's settings and trained nothing
        print(f"nothing to do: {out} already holds all {done:,} steps of this run (--max-steps {done:,}); "
              "nothing was changed. Give a larger --max-steps to go on, or --fresh to start over")
        return
    print(f"saved to {out}: {summary}")


def _sampler(args, pipe) -> str:
    """``--scheduler``, else the sampler the weights store, else ddim; ``--steps`` left out then means
    the stored steps for the stored sampler (``pipe.default_steps``)."""
    return args.scheduler or pipe.config.get("sampler") or "ddim"


def interrupted_train(args) -> str:
    """What a Ctrl-C during ``train`` leaves: the newest whole checkpoint, if any."""
    out = train_out(args)
    aside = getattr(args, "set_aside", None)
    moved = f"; the previous run is in {aside}" if aside else ""
    checkpoint = latest_checkpoint(out) if out.is_dir() else None
    if checkpoint is None:
        return f"no checkpoint was saved in {out}, so there is nothing to resume{moved}"
    step = int(checkpoint.name.rpartition("-")[2])
    return (f"{out} keeps the checkpoint of step {step:,} (and a loadable pipeline): run the same command again "
            f"to resume from it{moved}")


def interrupted_sample(args) -> str:
    written = getattr(args, "written", [])
    if not written:
        return "nothing was written"
    images = sum(n for _, n in written)
    files = ", ".join(str(path) for path, _ in written[:3]) + (" ..." if len(written) > 3 else "")
    return f"wrote {images:,} images in {len(written)} file(s) before it stopped: {files}"


def save_png(path: Path, write) -> None:
    """``write(tmp)`` a PNG beside ``path``, then rename it into place: never half a file; errors name ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        raise OSError(f"could not write {path}: {error.strerror or error}") from None
    finally:
        tmp.unlink(missing_ok=True)


def mosaic(images: list) -> Image.Image:
    """Images in order, row by row, white after the last: a square-ish uncaptioned grid."""
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    blank = Image.new("RGB", images[0].size, "white")
    return make_image_grid(images + [blank] * (rows * cols - len(images)), rows, cols)


def cmd_sample(args) -> None:
    out, how = png_path(args.out)
    reason = shipped_reason(out.parent)
    if reason:  # samples are not weights: they never go into a shipped model's folder
        raise OSError(f"refusing to write --out {shorten(str(out))}: {reason}; write it elsewhere")
    writable_file(out, "--out")
    pipe = load_pipeline(args.weights)
    pipe.scheduler = make_scheduler(_sampler(args, pipe), pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)  # one bar over batches instead
    cases = _cases(args, pipe)
    conditional = isinstance(pipe.label_encoder, LabelEncoder)  # an unconditional pipeline has no encoder
    if conditional and cases is None:
        raise ValueError("this model is conditional: give --labels or --labels-file")
    scenes = [c for c in cases for _ in range(args.num_images)] if conditional else [None] * args.num_images
    steps = args.steps or pipe.default_steps()
    kwargs = dict(num_inference_steps=steps, output_type="pil")
    if args.guidance_scale is not None:
        kwargs["guidance_scale"] = args.guidance_scale
    n, batches = len(scenes), math.ceil(len(scenes) / args.batch_size)
    parts = math.ceil(n / PART_IMAGES) if n > GRID_CAPTIONS else 1
    width = len(str(parts))
    paths = [out] if parts == 1 else [out.with_name(f"{out.stem}-part{i + 1:0{width}d}.png") for i in range(parts)]
    extra = f", written in {parts:,} files of up to {PART_IMAGES:,} images ({paths[0].name} ...)" if parts > 1 else ""
    say_how_long("sample:", n, steps, batches, estimate_seconds(pipe, scenes[:args.batch_size], steps, batches,
                                                                 conditional, kwargs), extra)
    generator = torch.Generator().manual_seed(args.seed)
    args.written = []  # (file, images) as each is written: what a Ctrl-C keeps
    images = []  # PIL images, 3 KB each at 32 x 32: at most one part's
    for first in tqdm(range(0, n, args.batch_size), desc="batches", unit="batch"):
        batch = scenes[first:first + args.batch_size]
        images += (pipe(batch, generator=generator, **kwargs) if conditional else
                   pipe(batch_size=len(batch), generator=generator, **kwargs)).images
        while parts > 1 and (len(images) >= PART_IMAGES or (first + len(batch) == n and images)):
            part, images = images[:PART_IMAGES], images[PART_IMAGES:]
            path = paths[len(args.written)]
            save_png(path, lambda tmp, part=part: mosaic(part).save(tmp, format="PNG"))
            args.written.append((path, len(part)))
    if parts > 1:
        how += f" (in {parts:,} mosaics without captions of up to {PART_IMAGES:,} images, scenes in order)"
        print(f"wrote {n:,} images to {paths[0]} ... {paths[-1]}{how}")
        return
    if n <= GRID_CAPTIONS:
        captions = [", ".join(c) for c in scenes] if conditional else None
        figure = image_grid(images, captions, ncols=min(8, n))
        save_png(out, lambda tmp: figure.savefig(tmp, dpi=150, bbox_inches="tight", format="png"))
    else:  # too many for captions: a plain mosaic, scenes in order, row by row, white after the last
        save_png(out, lambda tmp: mosaic(images).save(tmp, format="PNG"))
        how += f" (a {math.ceil(math.sqrt(n))}-wide mosaic without captions: more than {GRID_CAPTIONS} images)"
    args.written.append((out, n))
    print(f"wrote {n} images to {out}{how}")


def cmd_evaluate(args) -> None:
    if args.labels_file is not None and args.split is not None:
        raise ValueError("give --split or --labels-file, not both (--split names a committed split: test, "
                         "new_test or single; --labels-file a JSON file of your own)")
    split = labels_file_path(args.labels_file) if args.labels_file is not None else (args.split or "test")
    evaluator = load_evaluator(args.evaluator)
    pipe = load_pipeline(args.weights)
    kwargs = {} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}
    cases = load_split(split)
    if isinstance(pipe.label_encoder, LabelEncoder):
        probe = type(pipe)(**{**pipe.components, "scheduler": make_scheduler(_sampler(args, pipe),
                                                                              pipe.scheduler.config)},
                           **pipe.parameters)
        probe.set_progress_bar_config(disable=True)
        steps, batches = args.steps or probe.default_steps(), math.ceil(len(cases) / args.batch_size)
        say_how_long("evaluate:", len(cases), steps, batches,
                     estimate_seconds(probe, cases[:args.batch_size], steps, batches, True, kwargs))
    result = evaluate(pipe, split, scheduler=_sampler(args, pipe), num_inference_steps=args.steps, seed=args.seed,
                      evaluator=evaluator, progress=True, batch_size=args.batch_size, keep_images=0, **kwargs)
    print(f"split: {shorten(str(split))}  sampler: {result['scheduler']} x {result['steps']}  "
          f"guidance: {result['guidance_scale']}")
    print(f"images: {len(result['cases'])}  seconds: {result['seconds']:.1f}")
    print(f"top-k accuracy: {result['accuracy']:.3f}")
    print(f"exact-scene accuracy: {result['exact_scene_accuracy']:.3f}")


def build_parser(description: str = __doc__) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The parser with the reader commands, and its subparsers for ``condiff.tools.cli`` to add to."""
    parser = Parser(prog=PROG, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    positive = whole(1)
    train_seed = whole(0, TRAIN_SEEDS - 1, " (training derives each step's seed from it)")

    p = sub.add_parser("train", help="train a recipe into a folder; resumes if it exists")
    p.add_argument("recipe", choices=list(RECIPES))
    p.add_argument("--out", help="output folder (default runs/RECIPE); never write over weights/ by accident")
    p.add_argument("--max-steps", type=positive, help="total optimiser steps (default: the recipe's)")
    p.add_argument("--stop-after", type=positive, help="stop this call after N steps; run again to resume")
    p.add_argument("--batch-size", type=positive)
    p.add_argument("--learning-rate", type=number(0, 1, low_open=True),
                   help="peak rate at the reference batch (256); training scales it by sqrt(batch size / 256)")
    p.add_argument("--seed", type=train_seed)
    p.add_argument("--snr-gamma", type=number(0, 1000, low_open=True),
                   help="weight each image's loss by min(SNR, gamma) / SNR (Min-SNR-gamma, Hang et al. 2023), "
                        "e.g. 5 (default: the recipe's, plain MSE)")
    p.add_argument("--timestep-sampling", choices=TIMESTEP_SAMPLING,
                   help="how training draws timesteps (default: the recipe's, uniform)")
    p.add_argument("--label-hidden-dim", type=positive,
                   help="hidden width of the label MLP (time_sum, cross_attention; default: its output width); "
                        "with --init-from, a wider one than the start's keeps what the start computes")
    p.add_argument("--ema-warmup", choices=EMA_WARMUP,
                   help="off: the weights' average decays at the recipe's ema_decay from the first step, so a warm "
                        "restart keeps the average it starts from (default: the recipe's, on: the decay grows)")
    p.add_argument("--snapshot-every", type=whole(0), default=0,
                   help="also keep the EMA pipeline every N steps in OUT/snapshots/ (accuracy-over-time curves)")
    p.add_argument("--note", help="a line for training.json and the weights card, e.g. how the machine was shared")
    p.add_argument("--fresh", action="store_true",
                   help="start over: an existing run in --out is first moved whole to OUT.previous")
    p.add_argument("--init-from", metavar="FOLDER",
                   help="start a new run from these weights (a pipeline folder of the same model, e.g. "
                        "weights/time_sum): a warm restart, recorded as a leg in training.json")
    p.add_argument("--overwrite-shipped", action="store_true",
                   help="allow --out to be a shipped model's folder (weights/NAME): replaces those weights")
    p.add_argument("--log-every", type=positive, default=50, help="read the loss back every N steps (default 50)")
    p.add_argument("--compile", choices=COMPILE_MODES[1:],
                   help="run the UNet through torch.compile in this mode (reduce-overhead: CUDA graphs)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: a GPU if there is one")
    p.set_defaults(func=cmd_train, interrupted=interrupted_train)

    for name, func, helptext in [("sample", cmd_sample, "draw images and save a captioned grid"),
                                 ("evaluate", cmd_evaluate, "generate a split and print its accuracy")]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--weights", required=True, help=f"a pipeline folder, e.g. {WEIGHTS_DIR.name}/time_sum")
        p.add_argument("--labels-file", metavar="FILE",
                       help="path of a JSON list of object lists, like i-CLEVR's test.json")
        p.add_argument("--scheduler", choices=list(SCHEDULERS), help="default: what the weights store, else ddim")
        p.add_argument("--steps", type=whole(1, 1000, " (the training schedule has 1,000 steps)"),
                       help="denoising steps, 1 to 1000 (default: what the weights store, else 50; ddpm 1000)")
        p.add_argument("--guidance-scale", type=number(0, MAX_GUIDANCE, " (0 ignores the labels, 1 is plain "
                       "conditional sampling, images saturate by about 10)"),
                       help=f"classifier-free guidance weight w, 0 to {MAX_GUIDANCE:g} (default: the best w the "
                            "weights store, else 1: off)")
        p.add_argument("--seed", type=whole(0, SAMPLE_SEEDS - 1), default=0)
        p.add_argument("--batch-size", type=positive, default=64,
                       help="images generated at once (default 64); memory depends on this, not on the count")
        p.set_defaults(func=func)
        if name == "sample":
            p.set_defaults(interrupted=interrupted_sample)
            p.add_argument("--labels", help='objects by commas, scenes by semicolons: "red cube,blue sphere;gray cube"')
            p.add_argument("--num-images", type=positive, default=1,
                           help="images per scene (or in all, unconditional)")
            p.add_argument("--out", default="samples.png",
                           help="PNG file (.png is added if missing) or folder (then FOLDER/samples.png)")
        else:
            p.add_argument("--split", help="test, new_test or single (default test); not with --labels-file")
            p.add_argument("--evaluator", help="classifier folder (default weights/evaluator)")
    return parser, sub


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    """Parse ``argv`` and run its command; bad input exits with status 2 and one line on stderr, Ctrl-C with
    status 130 and one line that says what was saved (the command's ``interrupted(args)``)."""
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {shorten(str(error), 2000)}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        said = getattr(args, "interrupted", None)
        print(f"\ninterrupted (Ctrl-C): {said(args) if said else 'stopped before it finished'}", file=sys.stderr)
        raise SystemExit(130) from None


def main(argv: list[str] | None = None) -> None:
    """The reader commands alone (``python -m condiff`` runs ``condiff.tools.cli.main``, which has them all)."""
    run(build_parser()[0], argv)
