"""Command line: ``python -m condiff {train,sample,evaluate,results,blog} ...`` (``--help`` on each).

    python -m condiff train time_sum --out runs/time_sum
    python -m condiff sample --weights weights/time_sum --labels "red cube,blue sphere" --out grid.png
    python -m condiff evaluate --weights weights/time_sum --split new_test
    python -m condiff results
    python -m condiff blog --out site/_posts --date 2026-11-27

``--labels`` takes objects separated by commas and scenes by semicolons:
``"red cube,blue sphere;gray cylinder"`` is two images. ``--labels-file`` takes a JSON list of
object lists, the format of i-CLEVR's ``test.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import WEIGHTS_DIR


def _cases(args) -> list[list[str]] | None:
    from .data.iclevr import load_split
    from .data.labels import parse_objects

    if args.labels and args.labels_file:
        raise ValueError("give --labels or --labels-file, not both")  # main() exits with 2
    if args.labels_file:
        return load_split(Path(args.labels_file))
    if args.labels:
        return [parse_objects(scene) for scene in args.labels.split(";") if scene.strip()]
    return None


def _pipeline(args):
    """Load ``--weights`` with the sampler, steps and guidance asked for, else those the folder stores."""
    from .pipeline import load_pipeline, make_scheduler

    pipe = load_pipeline(args.weights)
    pipe.scheduler = make_scheduler(args.scheduler or pipe.config.get("sampler") or "ddim", pipe.scheduler.config)
    args.steps = args.steps or pipe.default_steps()
    if args.guidance_scale is None:
        args.guidance_scale = pipe.config.get("guidance_scale", 1.0)
    return pipe


def cmd_train(args) -> None:
    if args.recipe == "evaluator":
        from .evaluate import train_evaluator

        out = args.out or "runs/evaluator"
        summary = train_evaluator(out, steps=args.max_steps or 1000, seed=args.seed or 0)
    else:
        from .recipes import get_recipe
        from .train import train

        recipe = get_recipe(args.recipe).with_overrides(seed=args.seed, batch_size=args.batch_size,
                                                        learning_rate=args.learning_rate)
        out = args.out or f"runs/{recipe.name}"
        summary = train(recipe, out, max_steps=args.max_steps, resume=not args.fresh, stop_after=args.stop_after,
                        num_workers=args.workers, snapshot_every=args.snapshot_every, note=args.note)
    print(f"saved to {out}: {summary}")


def cmd_sample(args) -> None:
    import torch

    from .plotting import image_grid

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
    from .evaluate import evaluate, load_evaluator

    pipe = _pipeline(args)
    split = Path(args.labels_file) if args.labels_file else args.split
    result = evaluate(pipe, split, guidance_scale=args.guidance_scale, num_inference_steps=args.steps,
                      seed=args.seed, evaluator=load_evaluator(args.evaluator), progress=True)
    print(f"split: {split}  sampler: {result['scheduler']} x {result['steps']}  guidance: {args.guidance_scale}")
    print(f"images: {len(result['cases'])}  seconds: {result['seconds']:.1f}")
    print(f"accuracy: {result['accuracy']:.3f}")
    print(f"exact-set accuracy: {result['exact_accuracy']:.3f}")


def cmd_results(args) -> None:
    from .results import to_markdown, write_results

    print(to_markdown(write_results(quick=args.quick)["rows"]))


def cmd_blog(args) -> None:
    import condiff

    from .blog import export_all, export_post

    if args.notebooks:
        paths = [export_post(notebook, args.out, date=args.date) for notebook in args.notebooks]
    else:
        paths = export_all(Path(condiff.__file__).resolve().parent.parent / "notebooks", args.out, date=args.date)
    for path in paths:
        print(path)


def cmd_tutorial(args) -> None:
    from .tutorial import print_results, run_all

    run_all(None if args.inplace else Path(args.out), args.notebooks)
    print_results()


def cmd_benchmark(args) -> None:
    import json

    from . import benchmark

    if args.samplers or args.curve:
        limit = 8 if args.quick else None
        if args.samplers:
            result = benchmark.sampler_table(args.samplers, device=args.device, limit=limit)
        else:
            result = benchmark.training_curve(args.curve, device=args.device, limit=limit)
        text = json.dumps(result, indent=1)
        if args.json:
            Path(args.json).write_text(text + "\n")
        print(text)
    else:
        print(benchmark.report(quick=args.quick))


def cmd_cards(args) -> None:
    from .results import ship, store_best_guidance, write_cards

    for spec in args.ship or []:
        name, _, run_dir = spec.partition("=")
        print(f"shipped {run_dir} -> {ship(run_dir, name)}")
    if args.ship_archive:
        from .tools.train_all import ship_archive

        for name in ship_archive(args.ship_archive):
            print(f"shipped {name} from {args.ship_archive}")
    if args.store_guidance:
        for name, w in store_best_guidance().items():
            print(f"stored guidance {w:g} (DDIM-25) in weights/{name}/model_index.json")
    print(f"wrote {write_cards()}")


def cmd_train_all(args) -> None:
    import json

    from .tools.train_all import MODELS, train_all

    def names(text):
        return tuple(n.strip() for n in (text or "").split(",") if n.strip())

    def value(text):  # --train-option values: JSON (numbers, true, null) or plain strings
        try:
            return json.loads(text)
        except ValueError:
            return text

    train_options = {}
    for spec in args.train_option or []:
        key, sep, text = spec.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--train-option takes NAME=VALUE (an argument of condiff.train.train), got {spec!r}")
        train_options[key] = value(text)
    samplers = []
    for spec in names(args.samplers):
        sampler, _, steps = spec.rpartition("-")
        if not steps.isdigit():
            raise ValueError(f"--samplers takes SAMPLER-STEPS items such as ddim-25 or dpm++-10, got {spec!r}")
        samplers.append((sampler, int(steps)))
    summary = train_all(
        args.out, args.budget_minutes, work=args.work, quick=args.quick, models=names(args.models) or MODELS,
        variants=names(args.variants), use_variants=names(args.use_variants),
        images_per_second=args.images_per_second, max_steps=args.max_steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, snapshots=args.snapshots, limit=args.limit or (4 if args.quick else None),
        guidance_scales=tuple(float(w) for w in names(args.guidance_scales)), samplers=tuple(samplers),
        margin=args.margin, weights_dtype=args.weights_dtype, fresh=args.fresh, train_options=train_options,
        command="python -m condiff " + " ".join(sys.argv[1:]),
    )
    print(f"wrote {', '.join(summary['files'])} to {args.out}")


def build_parser() -> argparse.ArgumentParser:
    from .pipeline import SCHEDULERS
    from .recipes import RECIPES

    parser = argparse.ArgumentParser(prog="python -m condiff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a recipe (or the evaluator) into a folder; resumes if it exists")
    p.add_argument("recipe", choices=[*RECIPES, "evaluator"])
    p.add_argument("--out", help="output folder (default runs/RECIPE); never write over weights/ by accident")
    p.add_argument("--max-steps", type=int, help="total optimiser steps (default: the recipe's)")
    p.add_argument("--stop-after", type=int, help="stop this call after N steps; run again to resume")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, default=0,
                   help="processes that render batches ahead of the GPU (default 0: render in the loop)")
    p.add_argument("--snapshot-every", type=int, default=0,
                   help="also keep the EMA pipeline every N steps in OUT/snapshots/ (accuracy-over-time curves)")
    p.add_argument("--note", help="a line for training.json and the weights card, e.g. how the machine was shared")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.set_defaults(func=cmd_train)

    for name, func, helptext in [("sample", cmd_sample, "draw images and save a captioned grid"),
                                 ("evaluate", cmd_evaluate, "generate a split and print its accuracy")]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--weights", required=True, help=f"a pipeline folder, e.g. {WEIGHTS_DIR.name}/time_sum")
        p.add_argument("--labels-file", help="JSON list of object lists, like i-CLEVR's test.json")
        p.add_argument("--scheduler", choices=list(SCHEDULERS),
                       help="sampler (default: the one the weights store in model_index.json, else ddim)")
        p.add_argument("--steps", type=int, help="denoising steps (default: the stored steps for the stored "
                                                 "sampler, else 50; 1000 for ddpm)")
        p.add_argument("--guidance-scale", type=float,
                       help="classifier-free guidance weight (default: the one the weights store in "
                            "model_index.json, their best; 1.0 when they store none)")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=func)
        if name == "sample":
            p.add_argument("--labels", help='objects by commas, scenes by semicolons: "red cube,blue sphere;gray cube"')
            p.add_argument("--num-images", type=int, default=1, help="images per scene (or in all, unconditional)")
            p.add_argument("--out", default="samples.png")
        else:
            p.add_argument("--split", default="test", help="test, new_test or single (default test)")
            p.add_argument("--evaluator", help="classifier folder (default weights/evaluator)")
    p = sub.add_parser("results", help="score every shipped model, write weights/results.json, print the table")
    p.add_argument("--quick", action="store_true", help="5 denoising steps instead of 50, nothing written")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("tutorial", help="execute the notebooks headless (reader mode) and print the results table")
    p.add_argument("notebooks", nargs="*", help="only these notebooks, e.g. 01 03 (default: all)")
    p.add_argument("--out", default="runs/notebooks", help="where executed copies go (default runs/notebooks)")
    p.add_argument("--inplace", action="store_true", help="write outputs into notebooks/ (maintainers)")
    p.set_defaults(func=cmd_tutorial)

    p = sub.add_parser("benchmark", help="training throughput and sampling speed / accuracy on this machine")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--samplers", metavar="WEIGHTS_DIR", help="guidance sweep and sampler table of every model there")
    p.add_argument("--curve", metavar="RUN_DIR", help="accuracy of each snapshot of a run against training time")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", help="also write the result to this file")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("cards", help="write weights/README.md, a card per shipped model (optionally ship runs first)")
    p.add_argument("--ship", action="append", metavar="NAME=RUN_DIR",
                   help="copy a finished run into weights/NAME first (no checkpoint), e.g. time_sum=runs/time_sum")
    p.add_argument("--store-guidance", action="store_true",
                   help="write each model's best guidance of weights/samplers.json into its model_index.json "
                        "(the default of sample and evaluate)")
    p.add_argument("--ship-archive", metavar="DIR",
                   help="ship every model of a train-all output folder (NAME.tar files, summary.json): pipelines, "
                        "samplers.json and training_curves.json")
    p.set_defaults(func=cmd_cards)

    p = sub.add_parser("train-all", help="train, score and package every model within a time budget (GPU sessions)")
    p.add_argument("--budget-minutes", type=float, required=True,
                   help="wall-clock minutes for everything: planning, training, scoring, packaging")
    p.add_argument("--out", required=True, help="folder for the files that must come back (summary.json, "
                                                "train-all.log, NAME.tar), each under 16 MB")
    p.add_argument("--work", default="runs/train-all", help="run folders and checkpoints (default runs/train-all); "
                                                            "the same command again resumes from them")
    p.add_argument("--quick", action="store_true", help="tiny models, 4 steps, 4 cases per split: a CPU smoke run")
    p.add_argument("--models", help="comma-separated subset of time_sum_cosine, time_sum, concat, cross_attention, "
                                    "unconditional (default all)")
    p.add_argument("--variants", help="compare time_sum_cosine with these variants at equal images instead: "
                                      "scale_shift, min_snr, wide, attn16 (comma-separated)")
    p.add_argument("--use-variants", help="apply these variants to every model trained (comma-separated)")
    p.add_argument("--images-per-second", type=float, help="training speed to plan with (default: measured)")
    p.add_argument("--max-steps", type=int, help="at most this many steps per model (default: what the budget allows)")
    p.add_argument("--batch-size", type=int, help="batch size of every model (default: the recipes')")
    p.add_argument("--learning-rate", type=float, help="learning rate of every model (default: the recipes')")
    p.add_argument("--snapshots", type=int, help="checkpoints (and curve points) per run (default 4; quick 2)")
    p.add_argument("--guidance-scales", help="guidance sweep, comma-separated (default 1,1.5,2,3,4,5; quick 1,3)")
    p.add_argument("--samplers", help="sampler table, e.g. ddim-50,ddim-25,dpm++-25,dpm++-10,ddpm-1000 "
                                      "(the default; quick ddim-5)")
    p.add_argument("--limit", type=int, help="score only the first N cases of each split")
    p.add_argument("--margin", type=float, default=0.1, help="share of the budget kept in reserve (default 0.1)")
    p.add_argument("--weights-dtype", choices=["auto", "float32", "float16"], default="auto",
                   help="how the pipelines' weights are stored and scored (default auto: float16 only for "
                        "pipelines with a file over 15 MB, such as the wide variant)")
    p.add_argument("--fresh", action="store_true", help="delete --work first instead of resuming")
    p.add_argument("--train-option", action="append", metavar="NAME=VALUE",
                   help="an argument for every condiff.train.train call, e.g. num_workers=2 (repeatable)")
    p.set_defaults(func=cmd_train_all)
    p = sub.add_parser("blog", help="export executed notebooks as Markdown posts (front matter, figures as files)")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="notebooks to export (default: all of notebooks/)")
    p.add_argument("--out", required=True, help="folder for the posts, e.g. site/_posts or docs/posts")
    p.add_argument("--date", help="the posts' date, YYYY-MM-DD (default today)")
    p.set_defaults(func=cmd_blog)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
