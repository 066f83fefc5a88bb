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
import sys
from pathlib import Path

import torch
from diffusers.utils import make_image_grid
from PIL import Image
from tqdm import tqdm

from .. import WEIGHTS_DIR
from ..data.iclevr import load_split
from ..data.labels import MAX_OBJECTS, OBJECTS, names_to_multihot, parse_objects, shorten
from ..evaluate import evaluate, load_evaluator
from ..pipeline import SCHEDULERS, load_pipeline, make_scheduler
from ..plotting import image_grid
from ..recipes import RECIPES, get_recipe
from ..train import COMPILE_MODES, RUN_SETTINGS, train

PROG = "python -m condiff"
TRAIN_FLAGS = {"max_steps": "--max-steps", **RUN_SETTINGS}  # what changes what a run learns: its reproduction command


# ---------------------------------------------------------------------------------------------
# Option checks: each runs before any work and says what was given and what is allowed
# ---------------------------------------------------------------------------------------------

MAX_GUIDANCE = 50.0  # w weights eps(label) - eps(null); images saturate by w ~ 10, and NaN/inf give black or noise
SAMPLE_SEEDS = 2**64  # what torch.Generator.manual_seed accepts (negative seeds would wrap onto others)
TRAIN_SEEDS = 2**32  # training seeds each step's generator with seed x 1,000,003 + step x 101, kept < 2**64
GRID_CAPTIONS = 64  # a captioned grid up to this many images; an uncaptioned mosaic beyond
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
        cases, given = load_split(Path(labels_file)), f"--labels-file {shorten(labels_file)}"
    elif labels is not None:
        cases, given = [parse_objects(scene) for scene in labels.split(";") if scene.strip()], "--labels"
        if not cases:
            raise ValueError(f"--labels {shorten(labels)!r} holds no scenes; write objects separated by commas "
                             'and scenes by semicolons, e.g. --labels "red cube,blue sphere;gray cylinder"')
    else:
        return None
    config = pipe.label_encoder.config if pipe.label_encoder is not None else None
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


def train_command(args, max_steps: int) -> str:
    """The command that repeats this training run: the recipe, the total steps and every setting given."""
    given = {**{key: getattr(args, key) for key in TRAIN_FLAGS}, "max_steps": max_steps}
    return " ".join([PROG, "train", args.recipe,
                     *(f"{TRAIN_FLAGS[key]} {value}" for key, value in given.items() if value is not None)])


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


def cmd_train(args) -> None:
    out = args.out or f"runs/{args.recipe}"
    keep_run_settings(args, Path(out))
    recipe = get_recipe(args.recipe).with_overrides(**{key: getattr(args, key) for key in TRAIN_FLAGS})
    summary = train(recipe, out, resume=not args.fresh, stop_after=args.stop_after,
                    snapshot_every=args.snapshot_every, note=args.note,
                    command=train_command(args, recipe.max_steps), log_every=args.log_every,
                    compile_mode=args.compile, device=args.device, overwrite_shipped=args.overwrite_shipped)
    print(f"saved to {out}: {summary}")


def _sampler(args, pipe) -> str:
    """``--scheduler``, else the sampler the weights store, else ddim; ``--steps`` left out then means
    the stored steps for the stored sampler (``pipe.default_steps``)."""
    return args.scheduler or pipe.config.get("sampler") or "ddim"


def cmd_sample(args) -> None:
    out, how = png_path(args.out)
    writable_file(out, "--out")
    pipe = load_pipeline(args.weights)
    pipe.scheduler = make_scheduler(_sampler(args, pipe), pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)  # one bar over batches instead
    cases = _cases(args, pipe)
    conditional = pipe.label_encoder is not None
    if conditional and cases is None:
        raise ValueError("this model is conditional: give --labels or --labels-file")
    scenes = [c for c in cases for _ in range(args.num_images)] if conditional else [None] * args.num_images
    generator = torch.Generator().manual_seed(args.seed)
    kwargs = dict(num_inference_steps=args.steps, generator=generator, output_type="pil")
    if args.guidance_scale is not None:
        kwargs["guidance_scale"] = args.guidance_scale
    images = []  # PIL images, 3 KB each at 32 x 32
    for first in tqdm(range(0, len(scenes), args.batch_size), desc="batches", unit="batch"):
        batch = scenes[first:first + args.batch_size]
        images += pipe(batch, **kwargs).images if conditional else pipe(batch_size=len(batch), **kwargs).images
    if len(images) <= GRID_CAPTIONS:
        captions = [", ".join(c) for c in scenes] if conditional else None
        figure = image_grid(images, captions, ncols=min(8, len(images)))
        figure.savefig(out, dpi=150, bbox_inches="tight")
    else:  # too many for captions: a plain mosaic, scenes in order, row by row, white after the last
        cols = math.ceil(math.sqrt(len(images)))
        rows = math.ceil(len(images) / cols)
        blank = Image.new("RGB", images[0].size, "white")
        make_image_grid(images + [blank] * (rows * cols - len(images)), rows, cols).save(out)
        how += f" (a {cols}-wide mosaic without captions: more than {GRID_CAPTIONS} images)"
    print(f"wrote {len(images)} images to {out}{how}")


def cmd_evaluate(args) -> None:
    split = Path(args.labels_file) if args.labels_file is not None else args.split
    evaluator = load_evaluator(args.evaluator)
    pipe = load_pipeline(args.weights)
    kwargs = {} if args.guidance_scale is None else {"guidance_scale": args.guidance_scale}
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
    p.add_argument("--snapshot-every", type=whole(0), default=0,
                   help="also keep the EMA pipeline every N steps in OUT/snapshots/ (accuracy-over-time curves)")
    p.add_argument("--note", help="a line for training.json and the weights card, e.g. how the machine was shared")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--overwrite-shipped", action="store_true",
                   help="allow --out to be a shipped model's folder (weights/NAME): replaces those weights")
    p.add_argument("--log-every", type=positive, default=50, help="read the loss back every N steps (default 50)")
    p.add_argument("--compile", choices=COMPILE_MODES[1:],
                   help="run the UNet through torch.compile in this mode (reduce-overhead: CUDA graphs)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: a GPU if there is one")
    p.set_defaults(func=cmd_train)

    for name, func, helptext in [("sample", cmd_sample, "draw images and save a captioned grid"),
                                 ("evaluate", cmd_evaluate, "generate a split and print its accuracy")]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--weights", required=True, help=f"a pipeline folder, e.g. {WEIGHTS_DIR.name}/time_sum")
        p.add_argument("--labels-file", help="JSON list of object lists, like i-CLEVR's test.json")
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
            p.add_argument("--labels", help='objects by commas, scenes by semicolons: "red cube,blue sphere;gray cube"')
            p.add_argument("--num-images", type=positive, default=1,
                           help="images per scene (or in all, unconditional)")
            p.add_argument("--out", default="samples.png",
                           help="PNG file (.png is added if missing) or folder (then FOLDER/samples.png)")
        else:
            p.add_argument("--split", default="test", help="test, new_test or single (default test)")
            p.add_argument("--evaluator", help="classifier folder (default weights/evaluator)")
    return parser, sub


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    """Parse ``argv`` and run its command; bad input exits with status 2 and one line on stderr."""
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {shorten(str(error), 2000)}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    """The reader commands alone (``python -m condiff`` runs ``condiff.tools.cli.main``, which has them all)."""
    run(build_parser()[0], argv)
