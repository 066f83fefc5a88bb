"""The maintainers' commands added to the readers' ones (``commands.py``): results, cards, benchmark, blog,
tutorial, train-all, train-evaluator, compare.

    python -m condiff results                       # score every shipped model, rewrite the README's tables
    python -m condiff cards --ship time_sum=runs/time_sum
    python -m condiff benchmark --quick
    python -m condiff blog --out site/_posts --date 2026-11-27 --interval-days 7
    python -m condiff tutorial 01 03
    python -m condiff train-all --budget-minutes 8 --out OUT    # a GPU session: train, score, package all five
    python -m condiff cards --ship-archive OUT                  # then ship what it brought back
    python -m condiff train-evaluator --out runs/evaluator      # remake the judge of weights/evaluator
    python -m condiff compare --out ../runs/compare             # recipe variants at equal images, on a CPU
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from . import REPO_DIR, benchmark, cards, commands
from .blog import export_all, export_post
from .cards import check_ship, ship, store_best_guidance, write_cards
from .compare import VARIANTS, compare, table
from .evaluator import STEPS, train_evaluator
from .readme import update_readme
from .results import to_markdown, write_results
from .train_all import MODELS, ship_archive, train_all
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
    if args.ship_archive:
        for name in ship_archive(args.ship_archive, cards.WEIGHTS_DIR):
            print(f"shipped {name} from {args.ship_archive}")
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


def _samplers(text: str | None) -> tuple[tuple[str, int], ...]:
    samplers = []
    for spec in _names(text):
        sampler, _, steps = spec.rpartition("-")
        if not steps.isdigit():
            raise ValueError(f"--samplers takes SAMPLER-STEPS items such as ddim-25 or dpm++-10, got {spec!r}")
        samplers.append((sampler, int(steps)))
    return tuple(samplers)


def cmd_train_all(args) -> None:
    summary = train_all(
        args.out, args.budget_minutes, work=args.work, quick=args.quick, models=_names(args.models) or MODELS,
        variants=_names(args.variants), use_variants=_names(args.use_variants),
        images_per_second=args.images_per_second, max_steps=args.max_steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, snapshots=args.snapshots, limit=args.limit or (4 if args.quick else None),
        guidance_scales=tuple(float(w) for w in _names(args.guidance_scales)), samplers=_samplers(args.samplers),
        margin=args.margin, weights_dtype=args.weights_dtype, fresh=args.fresh,
        train_options=_train_options(args.train_option), command="python -m condiff " + " ".join(sys.argv[1:]),
    )
    print(f"wrote {', '.join(summary['files'])} to {args.out}")


def cmd_benchmark(args) -> None:
    if args.json:
        commands.writable_file(Path(args.json), "--json")  # before the benchmark, not after it
    if args.samplers or args.curve or args.throughput or args.json:
        limit = 8 if args.quick else None
        if args.samplers:
            result = benchmark.sampler_table(args.samplers, device=args.device, limit=limit)
        elif args.curve:
            result = benchmark.training_curve(args.curve, device=args.device, limit=limit)
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
    p.add_argument("--ship-archive", metavar="DIR",
                   help="ship every model of a train-all output folder (NAME.tar files, summary.json): pipelines, "
                        "samplers.json and training_curves.json")
    p.add_argument("--store-guidance", action="store_true",
                   help="write each model's best guidance of weights/samplers.json into its model_index.json "
                        "(the default of sample and evaluate)")
    p.set_defaults(func=cmd_cards)

    p = sub.add_parser("benchmark", help="training throughput and sampling speed / accuracy on this machine")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--samplers", metavar="WEIGHTS_DIR", help="guidance sweep and sampler table of every model there")
    p.add_argument("--curve", metavar="RUN_DIR", help="accuracy of each snapshot of a run against training time")
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

    p = sub.add_parser("train-all", help="train, score and package every model within a time budget (GPU sessions)")
    p.add_argument("--budget-minutes", type=float, required=True,
                   help="wall-clock minutes for everything: planning, training, scoring, packaging")
    p.add_argument("--out", required=True, help="folder for the files that must come back (summary.json, "
                                                "train-all.log, NAME.tar), each under 16 MB")
    p.add_argument("--work", default="runs/train-all", help="run folders and checkpoints (default runs/train-all); "
                                                            "the same command again resumes from them")
    p.add_argument("--quick", action="store_true", help="tiny models, 4 steps, 4 cases per split: a CPU smoke run")
    p.add_argument("--models", help=f"comma-separated subset of {', '.join(MODELS)} (default all)")
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
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> None:
    """``python -m condiff`` and the ``condiff`` console script: every command."""
    commands.run(build_parser(), argv)
