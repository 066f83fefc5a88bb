"""Run the six notebooks headless, as a reader would, and print the results table.

    python -m condiff tutorial              # executes into runs/notebooks/, prints times + table
    python -m condiff tutorial --inplace    # maintainers: refresh the committed outputs

Each notebook runs top to bottom in a fresh kernel (nbclient), in reader mode (shipped weights,
no training) unless ``CONDIFF_QUICK=1`` is set. The console shows one line when a notebook starts, one
with its time when it ends, then the results table: the kernel's own log (its warning about running
over local TCP, which a reader cannot act on) is kept below ERROR.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .. import WEIGHTS_DIR
from . import REPO_DIR
from .results import to_markdown

NOTEBOOKS_DIR = REPO_DIR / "notebooks"
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]  # the kernel logs only errors to the console


def run_notebook(path: Path, out_path: Path, timeout: int = 900) -> float:
    """Execute one notebook with its own folder as working directory; return the seconds it took."""
    # Development dependencies (pip install -e ".[dev]"): imported here so the rest of the CLI runs without them.
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, out_path)
    return seconds


def run_all(out_dir: Path | None = None, names: list[str] | None = None) -> dict[str, float]:
    """Execute every notebook (or ``names``); ``out_dir=None`` writes the outputs in place."""
    paths = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if names:
        unmatched = [n for n in names if not any(p.name.startswith(n) or p.stem == n for p in paths)]
        if unmatched:
            raise ValueError(f"no notebook matches {', '.join(map(repr, unmatched))}; the notebooks are "
                             f"{', '.join(p.stem for p in paths)} (give a number such as 01, or a name)")
        paths = [p for p in paths if any(p.name.startswith(n) or p.stem == n for n in names)]
    times = {}
    for number, path in enumerate(paths, 1):
        target = path if out_dir is None else Path(out_dir) / path.name
        print(f"[{number}/{len(paths)}] {path.name}: running ...", flush=True)
        times[path.name] = run_notebook(path, target)
        print(f"[{number}/{len(paths)}] {path.name}: done in {times[path.name]:.0f} s", flush=True)
    return times


def print_results() -> None:
    path = WEIGHTS_DIR / "results.json"
    if not path.is_file():
        print("no weights/results.json yet: `python -m condiff results` measures it")
        return
    results = json.loads(path.read_text())
    print(f"\nResults ({results['settings']}):\n")
    print(to_markdown(results["rows"]))
