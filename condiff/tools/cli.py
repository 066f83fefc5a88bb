"""The maintainers' commands added to the readers' ones (``commands.py``): results, cards, benchmark, blog,
tutorial, train-all, train-evaluator, compare.

    python -m condiff results                       # score every shipped model, rewrite the README's tables
    python -m condiff cards --ship time_sum=runs/time_sum
    python -m condiff benchmark --quick
    python -m condiff blog --out site/_posts --date 2026-11-27 --interval-days 7
    python -m condiff tutorial 01 03
    python -m condiff train-all --out runs/all                  # train and score all five, one after the other
    python -m condiff cards --ship-all runs/all                 # then ship them
    python -m condiff train-evaluator --out runs/evaluator      # remake the judge of weights/evaluator
    python -m condiff compare --out ../runs/compare             # recipe variants at equal images, on a CPU
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..pipeline import SCHEDULERS
from ..recipes import RECIPES
from . import REPO_DIR, benchmark, cards, commands
from .benchmark import GUIDANCE_SCALES, SAMPLERS
from .blog import export_all, export_post
from .cards import check_ship, ship, store_best_guidance, write_cards
from .compare import VARIANTS, compare, table
from .compare import ship as ship_comparison
from .evaluator import STEPS, train_evaluator
from .readme import update_compare_table, update_readme
from .results import to_markdown, write_results
from .train_all import MODELS, ship_all, train_all
from .tutorial import print_results, run_all


def cmd_results(args) -> None:
    results = write_results(quick=args.quick)
    if not args.quick:
        update_readme(results)
    print(to_markdown(results["rows"]))


def _ship_specs(specs: list[str] | None) -> list[tuple[str, str]]:
    """``--ship NAME=RUN_DIR`` values -> (name, run folder), each checked before anything is shipped."""
    pairs = []
    for spec in specs or []:
        name, sep, run_dir = spec.partition("=")
        if not sep or not name or not run_dir:
            raise ValueError(f"--ship takes NAME=RUN_DIR: the weights/ folder to fill (a recipe's name, or "
                             f"evaluator), '=', then the finished run to copy, e.g. --ship time_sum=runs/time_sum; "
                             f"got {commands.shorten(spec)!r}")
        check_ship(run_dir, name, cards.WEIGHTS_DIR)
        pairs.append((name, run_dir))
    return pairs


def cmd_cards(args) -> None:
    for name, run_dir in _ship_specs(args.ship):
        print(f"shipped {run_dir} -> {ship(run_dir, name, cards.WEIGHTS_DIR)}")
    if args.ship_all:
        for name in ship_all(args.ship_all, cards.WEIGHTS_DIR):
            print(f"shipped {name} from {args.ship_all}")
    if args.store_guidance:
        for name, w in store_best_guidance(cards.WEIGHTS_DIR).items():
            print(f"stored guidance {w:g} (DDIM-25) in weights/{name}/model_index.json")
    print(f"wrote {write_cards(cards.WEIGHTS_DIR)}")


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def _train_options(specs: list[str] | None) -> dict:
    """``NAME=VALUE`` strings -> keyword arguments for ``train()``; values as JSON (numbers, true) or text."""
    options = {}
    for spec in specs or []:
        key, sep, text = spec.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--train-option takes NAME=VALUE (an argument of condiff.train.train), got {spec!r}")
        try:
            options[key] = json.loads(text)
        except ValueError:
            options[key] = text
    return options


def _samplers(text: str) -> tuple[tuple[str, int], ...]:
    """``ddim-25,dpm++-10`` -> ``(("ddim", 25), ("dpm++", 10))`` (an argparse ``type``)."""
    samplers = []
    for spec in _names(text):
        sampler, _, steps = spec.rpartition("-")
        if sampler not in SCHEDULERS or not steps.isdigit() or not 1 <= int(steps) <= 1000:
            raise argparse.ArgumentTypeError(f"takes SAMPLER-STEPS items such as ddim-25 or dpm++-10 (samplers "
                                             f"{', '.join(SCHEDULERS)}; 1 to 1000 steps), got {spec!r}")
        samplers.append((sampler, int(steps)))
    return tuple(samplers)


def _guidance_scales(text: str) -> tuple[float, ...]:
    """``1,2.5,4`` -> ``(1.0, 2.5, 4.0)``, each a finite number from 0 to ``MAX_GUIDANCE``."""
    parse = commands.number(0, commands.MAX_GUIDANCE)
    return tuple(parse(w) for w in _names(text))


def _subset_of(allowed) -> callable:
    """An argparse ``type``: a comma-separated, non-empty subset of ``allowed`` -> a tuple of names."""
    def parse(text: str) -> tuple[str, ...]:
        names = _names(text)
        if not names or any(n not in allowed for n in names):
            raise argparse.ArgumentTypeError(f"takes a comma-separated subset of {', '.join(allowed)}, got {text!r}")
        return names
    return parse


SCORED = [name for name in RECIPES if RECIPES[name].mode != "unconditional"]  # the models with labels
_models, _scored_models = _subset_of(MODELS), _subset_of(SCORED)


def cmd_train_all(args) -> None:
    summary = train_all(
        args.out, models=args.models, quick=args.quick, max_steps=args.max_steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, snapshots=args.snapshots, limit=args.limit,
        guidance_scales=args.guidance_scales, samplers=args.samplers,
        train_options=_train_options(args.train_option), command="python -m condiff " + " ".join(sys.argv[1:]),
    )
    failed = {name: r["error"] for name, r in summary["runs"].items() if "error" in r}
    print(f"wrote {Path(args.out) / 'summary.json'}" + "".join(f"\n{n} failed: {e}" for n, e in failed.items()))


def cmd_benchmark(args) -> None:
    if args.merge:  # refused before any work
        if not (args.samplers and args.json):
            raise ValueError("--merge takes --samplers WEIGHTS_DIR and --json FILE (an earlier sampler table)")
        try:
            earlier = json.loads(Path(args.json).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"--merge: cannot read {args.json} as a sampler table: {error}") from None
        if not isinstance(earlier, dict) or not {"hardware", "settings", "digests", "models"} <= set(earlier):
            raise ValueError(f"--merge: {args.json} is not a sampler table (from benchmark --samplers --json)")
    if args.record_leg:  # refused before any work
        if not args.curve or args.quick:
            raise ValueError("--record-leg takes --curve RUN_DIR (a warm restart), without --quick")
        benchmark.warm_restart_of(args.curve)
    if args.json:
        commands.writable_file(Path(args.json), "--json")  # before the benchmark, not after it
    if args.samplers or args.curve or args.throughput or args.json:
        limit = 8 if args.quick else None
        if args.samplers:
            result = benchmark.sampler_table(args.samplers, names=args.models, device=args.device, limit=limit,
                                             on_row=benchmark.print_last_row,
                                             **({"samplers": args.sampler_list} if args.sampler_list else {}))
            if args.merge:  # these models' entries replace theirs in the --json file; the others stay
                result = benchmark.merge_sampler_tables(json.loads(Path(args.json).read_text()), result)
        elif args.curve:
            result = benchmark.training_curve(args.curve, device=args.device, limit=limit)
            if args.record_leg:
                print(f"recorded in {benchmark.record_warm_restart(args.curve, result)}")
        else:
            result = benchmark.throughput(device=args.device, batch_size=args.batch_size, steps=args.steps,
                                          compile_mode=args.compile, quick=args.quick)
        text = json.dumps(result, indent=1)
        if args.json:
            try:
                Path(args.json).write_text(text + "\n")
            except OSError as error:
                print(text)  # the result is not lost
                raise OSError(f"could not write --json {args.json}: {error.strerror or error}") from None
        print(text)
    else:
        print(benchmark.report(quick=args.quick))


def cmd_blog(args) -> None:
    if args.notebooks:
        paths = [export_post(notebook, args.out, date=args.date) for notebook in args.notebooks]
    else:
        paths = export_all(REPO_DIR / "notebooks", args.out, date=args.date, interval_days=args.interval_days)
    for path in paths:
        print(path)


def cmd_tutorial(args) -> None:
    run_all(None if args.inplace else Path(args.out), args.notebooks)
    print_results()


def cmd_train_evaluator(args) -> None:
    command = f"{commands.PROG} train-evaluator --max-steps {args.max_steps} --seed {args.seed}"
    summary = train_evaluator(args.out, args.max_steps, seed=args.seed, command=command,
                              overwrite_shipped=args.overwrite_shipped)  # refuses shipped weights before any work
    print(f"saved to {args.out}: {summary}")


def cmd_compare(args) -> None:
    names = _names(args.variants) or tuple(VARIANTS)
    if args.ship:
        target = ship_comparison(args.out)
        update_compare_table(table(json.loads(target.read_text())))
        print(f"wrote {target} and the README's comparison table")
        return
    scores = compare(args.out, names, images=args.images, snapshot_images=args.snapshot_images, speed=args.speed)
    print(table(scores))


def build_parser():
    """The readers' parser (train, sample, evaluate) with the maintainers' commands added."""
    parser, sub = commands.build_parser(description=f"{commands.__doc__}\n{__doc__}")

    p = sub.add_parser("results", help="score every shipped model, write weights/results.json, print the table")
    p.add_argument("--quick", action="store_true", help="5 denoising steps instead of 25, nothing written")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("cards", help="write the weights cards (weights/NAME/README.md and weights/README.md)")
    p.add_argument("--ship", action="append", metavar="NAME=RUN_DIR",
                   help="copy a finished run into weights/NAME first (no checkpoint), e.g. time_sum=runs/time_sum")
    p.add_argument("--ship-all", metavar="DIR",
                   help="ship every finished model of a train-all folder: pipelines, samplers.json and "
                        "training_curves.json")
    p.add_argument("--store-guidance", action="store_true",
                   help="write each model's best guidance of weights/samplers.json into its model_index.json "
                        "(the default of sample and evaluate)")
    p.set_defaults(func=cmd_cards)

    p = sub.add_parser("benchmark", help="training throughput and sampling speed / accuracy on this machine")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--samplers", metavar="WEIGHTS_DIR", help="guidance sweep and sampler table of every model there")
    p.add_argument("--models", type=_scored_models,
                   help=f"--samplers: only these models (comma-separated, of {', '.join(SCORED)})")
    p.add_argument("--sampler-list", type=_samplers, help="--samplers: these samplers, e.g. ddim-25,dpm++-10 "
                   "(default " + ",".join(f"{s}-{n}" for s, n in SAMPLERS) + ")")
    p.add_argument("--merge", action="store_true", help="--samplers with --json FILE: replace only these models' "
                   "entries in FILE, each marked with the machine it was measured on")
    p.add_argument("--curve", metavar="RUN_DIR", help="accuracy of each snapshot of a run against training time")
    p.add_argument("--record-leg", action="store_true", help="--curve of a warm restart (train --init-from): "
                   "keep its curve in weights/training_curves.json, shown in the README")
    p.add_argument("--throughput", action="store_true",
                   help="training images/s: the seed tutorials' loop against condiff's, same model and batch")
    p.add_argument("--batch-size", type=commands.whole(1), default=256, help="--throughput: the batch (default 256)")
    p.add_argument("--steps", type=commands.whole(1), default=20,
                   help="--throughput: warm-up steps, then as many timed (default 20)")
    p.add_argument("--compile", choices=["default", "reduce-overhead", "max-autotune"],
                   help="--throughput: run condiff's UNet through torch.compile in this mode")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu or cuda (default cpu)")
    p.add_argument("--json", help="also write the result to this file (alone: the --throughput result)")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("blog", help="export executed notebooks as Markdown posts (front matter, figures as files)")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="notebooks to export (default: all of notebooks/)")
    p.add_argument("--out", required=True, help="folder for the posts, e.g. site/_posts or docs/posts")
    p.add_argument("--date", help="the first post's date, YYYY-MM-DD (default today)")
    p.add_argument("--interval-days", type=commands.whole(1), default=7,
                   help="days between the posts of the series (default 7; whole folder only)")
    p.set_defaults(func=cmd_blog)

    p = sub.add_parser("tutorial", help="execute the notebooks headless (reader mode) and print the results table")
    p.add_argument("notebooks", nargs="*", help="only these notebooks, e.g. 01 03 (default: all)")
    p.add_argument("--out", default="runs/notebooks", help="where executed copies go (default runs/notebooks)")
    p.add_argument("--inplace", action="store_true", help="write outputs into notebooks/ (maintainers)")
    p.set_defaults(func=cmd_tutorial)

    p = sub.add_parser("train-all", help="train, score and record every model, one after the other (GPU or CPU)")
    p.add_argument("--out", required=True, help="one run folder per model, and summary.json; the same command "
                                                "again resumes (finished models are skipped)")
    p.add_argument("--quick", action="store_true", help="tiny models, 4 steps, 4 cases per split: a CPU smoke run")
    p.add_argument("--models", type=_models, default=MODELS,
                   help=f"comma-separated subset of {', '.join(MODELS)} (default all)")
    p.add_argument("--max-steps", type=commands.whole(1), help="steps of every model (default: the recipes')")
    p.add_argument("--batch-size", type=commands.whole(1), help="batch size of every model (default: the recipes')")
    p.add_argument("--learning-rate", type=commands.number(0, 1, low_open=True),
                   help="learning rate of every model (default: the recipes')")
    p.add_argument("--snapshots", type=commands.whole(1), help="checkpoints (and curve points) per model (default 4; "
                                                                 "quick 2)")
    p.add_argument("--guidance-scales", type=_guidance_scales,
                   help="guidance sweep, comma-separated (default " + ",".join(f"{w:g}" for w in GUIDANCE_SCALES)
                        + "; quick 1,3)")
    p.add_argument("--samplers", type=_samplers, help="sampler table, e.g. "
                   + ",".join(f"{s}-{n}" for s, n in SAMPLERS) + " (the default; quick ddim-5)")
    p.add_argument("--limit", type=commands.whole(1), help="score only the first N cases of each split")
    p.add_argument("--train-option", action="append", metavar="NAME=VALUE",
                   help="an argument for every condiff.train.train call, e.g. log_every=10 (repeatable)")
    p.set_defaults(func=cmd_train_all)

    p = sub.add_parser("train-evaluator", help="train the classifier that scores samples (weights/evaluator)")
    p.add_argument("--out", default="runs/evaluator", help="output folder (default runs/evaluator)")
    p.add_argument("--max-steps", type=commands.whole(1), default=STEPS,
                   help=f"training steps (default {STEPS}, how weights/evaluator was made)")
    p.add_argument("--seed", type=commands.whole(0, commands.TRAIN_SEEDS - 1), default=0)
    p.add_argument("--overwrite-shipped", action="store_true",
                   help="allow --out to be weights/evaluator: replaces the shipped judge")
    p.set_defaults(func=cmd_train_evaluator)

    p = sub.add_parser("compare", help="recipe variants trained from scratch at equal images and scored (CPU)")
    p.add_argument("--out", required=True, help="folder of the runs and scores.json (outside the repository)")
    p.add_argument("--variants", help=f"comma-separated, in order (default all: {', '.join(VARIANTS)})")
    p.add_argument("--images", type=commands.whole(64), default=128_000, help="training images per variant")
    p.add_argument("--snapshot-images", type=commands.whole(64), default=32_000,
                   help="score a snapshot every this many images (default 32,000)")
    p.add_argument("--speed", action="store_true", help="only time each variant's training step (images/s)")
    p.add_argument("--ship", action="store_true",
                   help="copy --out's scores.json to weights/compare.json and write the README's table; no training")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> None:
    """``python -m condiff`` and the ``condiff`` console script: every command."""
    commands.run(build_parser(), argv)
