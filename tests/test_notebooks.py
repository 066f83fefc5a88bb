"""The six notebooks: valid, executed with figures, no widgets or leaked local paths, and linked as a series.

Static checks on the ``.ipynb`` files; nothing is executed. The output checks expect executed notebooks
(``jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb``). ``$CONDIFF_NOTEBOOKS_DIR``
points the checks at another folder, e.g. freshly executed copies, before they replace the committed ones.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(os.environ.get("CONDIFF_NOTEBOOKS_DIR", Path(__file__).resolve().parent.parent / "notebooks"))
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
NUMBERED = sorted(p for p in NOTEBOOKS if re.match(r"\d\d_", p.name))

LOCAL_PATHS = ("/work/", "/root/", "/tmp/", "/home/")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colours of tracebacks, which could split a path


@functools.cache
def read(path: Path):
    return nbformat.read(path, as_version=4)


def source(cell) -> str:
    return "".join(cell.source) if isinstance(cell.source, list) else cell.source


def outputs(nb):
    """(cell index, output) for every output of every code cell."""
    return [(i, output) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for output in cell.get("outputs", [])]


def output_texts(output) -> list[str]:
    """The text a reader sees in an output: streams, text/* data (text/plain and the like) and tracebacks."""
    def join(value) -> str:
        return "".join(value) if isinstance(value, list) else str(value)

    if output.output_type == "stream":
        texts = [join(output.get("text", ""))]
    elif output.output_type == "error":
        texts = [output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])]
    else:
        texts = [join(value) for mime, value in output.get("data", {}).items()
                 if mime.startswith("text/") or mime.endswith("json")]
    return [ANSI.sub("", text) for text in texts]


notebooks = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def test_exactly_the_six_numbered_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert [p.name[:2] for p in NUMBERED] == ["01", "02", "03", "04", "05", "06"], (
        f"{NOTEBOOKS_DIR} must hold notebooks 01 to 06, one each; it holds {names}")
    assert len(NOTEBOOKS) == 6, f"{NOTEBOOKS_DIR} holds notebooks beyond 01-06: {names}"


# ---------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------

@notebooks
def test_valid_nbformat(path):
    nbformat.validate(read(path))  # raises ValidationError naming the bad field


@notebooks
def test_no_widget_state(path):
    assert "widgets" not in read(path).metadata, (
        f"{path.name}: notebook metadata holds widget state; clear it (it renders as noise outside Jupyter)")


# ---------------------------------------------------------------------------------------------
# Outputs (these need the notebooks executed)
# ---------------------------------------------------------------------------------------------

@notebooks
def test_has_a_figure(path):
    assert any("image/png" in output.get("data", {}) for _, output in outputs(read(path))), (
        f"{path.name}: no image/png output; execute the notebook before committing it")


@notebooks
def test_no_widget_outputs(path):
    for i, output in outputs(read(path)):
        assert WIDGET_VIEW not in output.get("data", {}), (
            f"{path.name} cell {i}: a widget output (a tqdm bar?), which GitHub and the blog cannot render")


@notebooks
def test_every_cell_with_outputs_has_an_execution_count(path):
    for i, cell in enumerate(read(path).cells):
        if cell.cell_type == "code" and cell.get("outputs"):
            assert cell.get("execution_count") is not None, (
                f"{path.name} cell {i}: has outputs but no execution_count (outputs from another run?)")


@notebooks
def test_no_errors(path):
    for i, output in outputs(read(path)):
        assert output.output_type != "error", (
            f"{path.name} cell {i}: {output.get('ename')}: {ANSI.sub('', str(output.get('evalue')))}")


@notebooks
def test_no_local_paths_in_outputs(path):
    leaks = [f"cell {i}: {line.strip()[:160]!r}" for i, output in outputs(read(path))
             for text in output_texts(output) for line in text.splitlines()
             if any(local in line for local in LOCAL_PATHS)]
    if leaks:
        pytest.fail(f"{path.name}: local paths ({', '.join(LOCAL_PATHS)}) in outputs:\n" + "\n".join(leaks))


# ---------------------------------------------------------------------------------------------
# Colab, set-up and the series
# ---------------------------------------------------------------------------------------------

@notebooks
def test_first_cell_has_a_colab_badge_for_this_notebook(path):
    first = source(read(path).cells[0])
    assert "Open In Colab" in first, f"{path.name} cell 0: no 'Open In Colab' badge"
    link = rf"\]\(https://colab\.research\.google\.com/github/[^)\s]*/{re.escape(path.name)}\)"
    assert re.search(link, first), f"{path.name} cell 0: the Colab badge must open {path.name}"


@notebooks
def test_setup_cell_reads_condiff_quick(path):
    assert any(cell.cell_type == "code" and "CONDIFF_QUICK" in source(cell) for cell in read(path).cells), (
        f"{path.name}: no set-up code cell reading CONDIFF_QUICK")


@notebooks
def test_training_is_off_by_default(path):
    switch = re.compile(r"^TRAIN = False\b", re.MULTILINE)
    assert any(cell.cell_type == "code" and switch.search(source(cell)) for cell in read(path).cells), (
        f"{path.name}: no 'TRAIN = False' switch in a code cell")


@notebooks
def test_links_to_previous_and_next_notebooks(path):
    if path not in NUMBERED:
        pytest.skip(f"{path.name} is not a numbered notebook")
    markdown = "\n".join(source(c) for c in read(path).cells if c.cell_type == "markdown")
    index = NUMBERED.index(path)
    neighbours = [NUMBERED[j].name for j in (index - 1, index + 1) if 0 <= j < len(NUMBERED)]
    for name in neighbours:
        assert re.search(rf"\]\((?:\./)?{re.escape(name)}(?:#[^)]*)?\)", markdown), (
            f"{path.name}: no markdown link to {name}")


# ---------------------------------------------------------------------------------------------
# One set-up cell, one repository URL, and the sections every notebook has
# ---------------------------------------------------------------------------------------------

def setup_cell(nb) -> str:
    return next(source(c) for c in nb.cells if c.cell_type == "code" and "google.colab" in source(c))


def test_setup_cells_are_identical_and_clone_the_one_repository_url():
    import condiff

    cells = {path.name: setup_cell(read(path)) for path in NUMBERED}
    assert len(set(cells.values())) == 1, f"the set-up cells differ: {sorted(cells)}"
    assert f'REPO_URL = "{condiff.REPO_URL}"' in next(iter(cells.values())), (
        f"the set-up cell must clone condiff.REPO_URL = {condiff.REPO_URL}")


README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("path", NUMBERED + [README], ids=lambda p: p.name)
def test_colab_badges_open_the_one_repository(path):
    import condiff

    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if "colab.research.google.com/github/" not in text:
        pytest.skip(f"{path.name} has no Colab badge")
    repo = condiff.REPO_URL.split("github.com/", 1)[1]
    for link in re.findall(r"colab\.research\.google\.com/github/([^)\s\"]+)", text):
        assert link.startswith(f"{repo}/blob/main/notebooks/"), f"{path.name}: a Colab link to {link}, not {repo}"


@notebooks
def test_has_try_it_and_references_sections(path):
    markdown = "\n".join(source(c) for c in read(path).cells if c.cell_type == "markdown")
    assert re.search(r"^## Try it$", markdown, re.MULTILINE), f"{path.name}: no '## Try it' section"
    exercises = re.search(r"^## Try it\n(.*?)(?=^## |\Z)", markdown, re.MULTILINE | re.DOTALL).group(1)
    assert 2 <= len(re.findall(r"^\d+\. ", exercises, re.MULTILINE)) <= 4, f"{path.name}: 2-4 exercises"
    assert re.search(r"^## References$", markdown, re.MULTILINE), f"{path.name}: no '## References' section"
    assert "https://arxiv.org/abs/" in markdown, f"{path.name}: no paper linked"
