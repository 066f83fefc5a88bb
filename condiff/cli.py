"""Command line: ``python -m condiff {train,sample,evaluate} ...`` (``--help`` on each).

    python -m condiff train time_sum --out runs/time_sum
    python -m condiff sample --weights weights/time_sum --labels "red cube,blue sphere" --out grid.png
    python -m condiff evaluate --weights weights/time_sum --split new_test

``--labels`` takes objects separated by commas and scenes by semicolons:
``"red cube,blue sphere;gray cylinder"`` is two images. ``--labels-file`` takes a JSON list of
object lists, the format of i-CLEVR's ``test.json``. The maintainers' commands (results, cards,
benchmark, blog, tutorial) are added by ``condiff.tools.cli``; ``python -m condiff`` has them all.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import WEIGHTS_DIR
from .data.iclevr import load_split
from .data.labels import parse_objects
from .evaluate import evaluate, load_evaluator, train_evaluator
from .pipeline import SCHEDULERS, load_pipeline, make_scheduler
from .plotting import image_grid
from .recipes import RECIPES, get_recipe
from .train import train

PROG = "python -m condiff"
TRAIN_FLAGS = {"max_steps": "--max-steps", "batch_size": "--batch-size", "learning_rate": "--learning-rate",
               "seed": "--seed"}  # the settings that change what a run learns: its reproduction command


def _cases(args) -> list[list[str]] | None:
    if args.labels and args.labels_file:
        raise ValueError("give --labels or --labels-file, not both")  # main() exits with 2
    if args.labels_file:
        return load_split(Path(args.labels_file))
    if args.labels:
        return [parse_objects(scene) for scene in args.labels.split(";") if scene.strip()]
    return None


def train_command(args, max_steps: int) -> str:
    """The command that repeats this training run: the recipe, the total steps and every setting given."""
    given = {**{key: getattr(args, key) for key in TRAIN_FLAGS}, "max_steps": max_steps}
    return " ".join([PROG, "train", args.recipe,
                     *(f"{TRAIN_FLAGS[key]} {value}" for key, value in given.items() if value is not None)])


def cmd_train(args) -> None:
    if args.recipe == "evaluator":
        out = args.out or "runs/evaluator"
        summary = train_evaluator(out, seed=args.seed or 0, command=train_command(args, args.max_steps),
                                  **({"steps": args.max_steps} if args.max_steps else {}))  # else its default
    else:
        recipe = get_recipe(args.recipe).with_overrides(seed=args.seed, batch_size=args.batch_size,
                                                        learning_rate=args.learning_rate, max_steps=args.max_steps)
        out = args.out or f"runs/{recipe.name}"
        summary = train(recipe, out, resume=not args.fresh, stop_after=args.stop_after, num_workers=args.workers,
                        snapshot_every=args.snapshot_every, note=args.note,
                        command=train_command(args, recipe.max_steps), log_every=args.log_every,
                        compile_mode=args.compile, device=args.device)
    print(f"saved to {out}: {summary}")


def _pipeline(args):
    """Load ``--weights``; fill ``--scheduler``, ``--steps`` and ``--guidance-scale`` left out with what it stores."""
    pipe = load_pipeline(args.weights)
    args.scheduler = args.scheduler or pipe.config.get("sampler") or "ddim"
    pipe.scheduler = make_scheduler(args.scheduler, pipe.scheduler.config)
    args.steps = args.steps or pipe.default_steps()  # the stored steps if that is the stored sampler
    args.guidance_scale = pipe.config.guidance_scale if args.guidance_scale is None else args.guidance_scale
    return pipe


def cmd_sample(args) -> None:
    pipe = _pipeline(args)
    cases = _cases(args)
    generator = torch.Generator().manual_seed(args.seed)
    kwargs = dict(guidance_scale=args.guidance_scale, num_inference_steps=args.steps, generator=generator)
    if pipe.label_encoder is None:
        images = pipe(batch_size=args.num_images, **kwargs).images
        captions = None
    else:
        if cases is None:
            raise ValueError("this model is conditional: give --labels or --labels-file")
        images = pipe(cases, num_images_per_label=args.num_images, **kwargs).images
        captions = [", ".join(c) for c in cases for _ in range(args.num_images)]
    image_grid(images, captions, ncols=min(8, len(images))).savefig(args.out, dpi=150, bbox_inches="tight")
    print(f"wrote {len(images)} images to {args.out}")


def cmd_evaluate(args) -> None:
    pipe = _pipeline(args)
    split = Path(args.labels_file) if args.labels_file else args.split
    result = evaluate(pipe, split, guidance_scale=args.guidance_scale, scheduler=args.scheduler,
                      num_inference_steps=args.steps, seed=args.seed, evaluator=load_evaluator(args.evaluator),
                      progress=True)
    print(f"split: {split}  sampler: {result['scheduler']} x {result['steps']}  guidance: {args.guidance_scale}")
    print(f"images: {len(result['cases'])}  seconds: {result['seconds']:.1f}")
    print(f"accuracy: {result['accuracy']:.3f}")
    print(f"exact-set accuracy: {result['exact_accuracy']:.3f}")


def build_parser(description: str = __doc__) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The parser with the reader commands, and its subparsers for ``condiff.tools.cli`` to add to."""
    parser = argparse.ArgumentParser(prog=PROG, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a recipe (or the evaluator) into a folder; resumes if it exists")
    p.add_argument("recipe", choices=[*RECIPES, "evaluator"])
    p.add_argument("--out", help="output folder (default runs/RECIPE); never write over weights/ by accident")
    p.add_argument("--max-steps", type=int, help="total optimiser steps (default: the recipe's)")
    p.add_argument("--stop-after", type=int, help="stop this call after N steps; run again to resume")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float,
                   help="peak rate at the reference batch (256); training scales it by sqrt(batch size / 256)")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, default=0,
                   help="CPU runs: processes that render batches ahead (default 0); a GPU draws its scenes itself")
    p.add_argument("--snapshot-every", type=int, default=0,
                   help="also keep the EMA pipeline every N steps in OUT/snapshots/ (accuracy-over-time curves)")
    p.add_argument("--note", help="a line for training.json and the weights card, e.g. how the machine was shared")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--log-every", type=int, default=50, help="read the loss back every N steps (default 50)")
    p.add_argument("--compile", choices=["default", "reduce-overhead", "max-autotune"],
                   help="run the UNet through torch.compile in this mode (reduce-overhead: CUDA graphs)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: a GPU if there is one")
    p.set_defaults(func=cmd_train)

    for name, func, helptext in [("sample", cmd_sample, "draw images and save a captioned grid"),
                                 ("evaluate", cmd_evaluate, "generate a split and print its accuracy")]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--weights", required=True, help=f"a pipeline folder, e.g. {WEIGHTS_DIR.name}/time_sum")
        p.add_argument("--labels-file", help="JSON list of object lists, like i-CLEVR's test.json")
        p.add_argument("--scheduler", choices=list(SCHEDULERS), help="default: what the weights store, else ddim")
        p.add_argument("--steps", type=int, help="denoising steps (default: what the weights store, else 50)")
        p.add_argument("--guidance-scale", type=float, help="default: the best w the weights store, else 1")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=func)
        if name == "sample":
            p.add_argument("--labels", help='objects by commas, scenes by semicolons: "red cube,blue sphere;gray cube"')
            p.add_argument("--num-images", type=int, default=1, help="images per scene (or in all, unconditional)")
            p.add_argument("--out", default="samples.png")
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
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    """The reader commands alone (``python -m condiff`` runs ``condiff.tools.cli.main``, which has them all)."""
    run(build_parser()[0], argv)
