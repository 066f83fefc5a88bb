"""The maintainers' commands, added to the core CLI: ``python -m condiff {results,cards,benchmark,blog,tutorial}``.

    python -m condiff results                       # score every shipped model, rewrite the README's tables
    python -m condiff cards --ship time_sum=runs/time_sum
    python -m condiff benchmark --quick
    python -m condiff blog --out site/_posts --date 2026-11-27
    python -m condiff tutorial 01 03
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import cli as core
from . import REPO_DIR, benchmark
from .blog import export_all, export_post
from .cards import ship, write_cards
from .readme import update_readme
from .results import to_markdown, write_results
from .tutorial import print_results, run_all


def cmd_results(args) -> None:
    results = write_results(quick=args.quick)
    if not args.quick:
        update_readme(results)
    print(to_markdown(results["rows"]))


def cmd_cards(args) -> None:
    for spec in args.ship or []:
        name, _, run_dir = spec.partition("=")
        print(f"shipped {run_dir} -> {ship(run_dir, name)}")
    print(f"wrote {write_cards()}")


def cmd_benchmark(args) -> None:
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
            Path(args.json).write_text(text + "\n")
        print(text)
    else:
        print(benchmark.report(quick=args.quick))


def cmd_blog(args) -> None:
    if args.notebooks:
        paths = [export_post(notebook, args.out, date=args.date) for notebook in args.notebooks]
    else:
        paths = export_all(REPO_DIR / "notebooks", args.out, date=args.date)
    for path in paths:
        print(path)


def cmd_tutorial(args) -> None:
    run_all(None if args.inplace else Path(args.out), args.notebooks)
    print_results()


def build_parser():
    """The core parser (train, sample, evaluate) with the maintainers' commands added."""
    parser, sub = core.build_parser(description=f"{core.__doc__}\n{__doc__}")

    p = sub.add_parser("results", help="score every shipped model, write weights/results.json, print the table")
    p.add_argument("--quick", action="store_true", help="5 denoising steps instead of 25, nothing written")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("cards", help="write the weights cards (weights/NAME/README.md and weights/README.md)")
    p.add_argument("--ship", action="append", metavar="NAME=RUN_DIR",
                   help="copy a finished run into weights/NAME first (no checkpoint), e.g. time_sum=runs/time_sum")
    p.set_defaults(func=cmd_cards)

    p = sub.add_parser("benchmark", help="training throughput and sampling speed / accuracy on this machine")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--samplers", metavar="WEIGHTS_DIR", help="guidance sweep and sampler table of every model there")
    p.add_argument("--curve", metavar="RUN_DIR", help="accuracy of each snapshot of a run against training time")
    p.add_argument("--throughput", action="store_true",
                   help="training images/s: the seed tutorials' loop against condiff's, same model and batch")
    p.add_argument("--batch-size", type=int, default=256, help="--throughput: the batch (default 256)")
    p.add_argument("--steps", type=int, default=20, help="--throughput: warm-up steps, then as many timed (default 20)")
    p.add_argument("--compile", choices=["default", "reduce-overhead", "max-autotune"],
                   help="--throughput: run condiff's UNet through torch.compile in this mode")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu or cuda (default cpu)")
    p.add_argument("--json", help="also write the result to this file (alone: the --throughput result)")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("blog", help="export executed notebooks as Markdown posts (front matter, figures as files)")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="notebooks to export (default: all of notebooks/)")
    p.add_argument("--out", required=True, help="folder for the posts, e.g. site/_posts or docs/posts")
    p.add_argument("--date", help="the posts' date, YYYY-MM-DD (default today)")
    p.set_defaults(func=cmd_blog)

    p = sub.add_parser("tutorial", help="execute the notebooks headless (reader mode) and print the results table")
    p.add_argument("notebooks", nargs="*", help="only these notebooks, e.g. 01 03 (default: all)")
    p.add_argument("--out", default="runs/notebooks", help="where executed copies go (default runs/notebooks)")
    p.add_argument("--inplace", action="store_true", help="write outputs into notebooks/ (maintainers)")
    p.set_defaults(func=cmd_tutorial)
    return parser


def main(argv: list[str] | None = None) -> None:
    """``python -m condiff`` and the ``condiff`` console script: every command."""
    core.run(build_parser(), argv)
