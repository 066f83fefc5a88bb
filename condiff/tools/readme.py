"""Put generated tables into ``README.md`` between marker comments, so the README shows what the code measured.

    <!-- results: written by `python -m condiff results` -->
    (the table, rewritten on every run)
    <!-- /results -->
"""
from __future__ import annotations

from pathlib import Path

from .. import WEIGHTS_DIR
from . import REPO_DIR
from .benchmark import samplers_markdown
from .results import results_markdown

README = REPO_DIR / "README.md"
RESULTS_MARKERS = ("<!-- results: written by `python -m condiff results` -->", "<!-- /results -->")
COMPARE_MARKERS = ("<!-- compare: written by `python -m condiff compare --ship` from weights/compare.json -->",
                   "<!-- /compare -->")
SAMPLERS_MARKERS = ("<!-- samplers: written by `python -m condiff results` from weights/samplers.json -->",
                    "<!-- /samplers -->")


def splice(text: str, markers: tuple[str, str], content: str, where: str = "README.md") -> str:
    """``text`` with ``content`` between the ``(start, end)`` markers (each must appear once, start first)."""
    start, end = markers
    for marker in markers:
        if text.count(marker) != 1:
            raise ValueError(f"{where} must hold the line {marker!r} exactly once (found {text.count(marker)}); "
                             "put the start and end markers back around the generated table")
    head, rest = text.split(start, 1)
    if end not in rest:
        raise ValueError(f"{where}: the marker {end!r} must come after {start!r}")
    tail = rest.split(end, 1)[1]
    return f"{head}{start}\n{content}\n{end}{tail}"


def update_compare_table(table: str, readme: Path = README) -> None:
    """Rewrite the recipe comparison table (``condiff.tools.compare.table``)."""
    readme.write_text(splice(readme.read_text(), COMPARE_MARKERS, table, readme.name))


def update_readme(results: dict, readme: Path = README, weights_dir: Path = WEIGHTS_DIR) -> None:
    """Rewrite the results table and, with ``weights/samplers.json``, the sampler tables (a clone's README)."""
    text = splice(readme.read_text(), RESULTS_MARKERS, results_markdown(results), readme.name)
    if (weights_dir / "samplers.json").is_file():
        text = splice(text, SAMPLERS_MARKERS, samplers_markdown(weights_dir), readme.name)
    readme.write_text(text)
