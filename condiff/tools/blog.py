"""Export executed notebooks as Markdown blog posts, with YAML front matter and their figures as files.

    python -m condiff blog --out site/_posts                      # every notebooks/*.ipynb
    python -m condiff blog --out docs/posts --date 2026-11-27 notebooks/03_time_sum_multilabel.ipynb

Each notebook ``NN_some_name.ipynb`` becomes ``OUT/DATE-NN_some_name.md`` (the name Jekyll wants) and its figures
``OUT/NN_some_name_files/NN_some_name_<cell>_<index>.png``, which the Markdown links relatively. The front
matter holds ``title`` (the first ``# `` heading), ``date``, ``tags`` and ``excerpt`` (the first paragraph of
prose after the title). The Colab set-up cell (the first code cell mentioning ``google.colab``) is left out;
everything else, code included, is kept. Execute the notebooks first: a notebook without outputs is refused.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path

BASE_TAGS = ["diffusion", "diffusers", "pytorch", "conditional-generation"]

_LINK = re.compile(r"!?\[[^\]]*\]\([^)]*\)")  # [text](url) and ![alt](url); a badge is one nested in the other
_NOT_PROSE = ("#", "```", "~~~", "$$", "<", "|", ">", "- ", "* ", "+ ")  # headings, code, math, HTML, tables, lists
_BADGE = re.compile(r"\[!\[[^\]]*\]\([^)]*\)\]\([^)]*\)")


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def _title(nb, fallback: str) -> str:
    """The first level-1 heading (``# ...``) of any markdown cell, as written."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in _text(cell.source).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _is_prose(paragraph: str) -> bool:
    """False for headings, code, lists, tables, HTML and lines that are mostly links (badges, navigation)."""
    if paragraph.startswith(_NOT_PROSE) or re.match(r"\d+\. ", paragraph):
        return False
    linked = sum(len(m.group()) for m in _BADGE.finditer(paragraph))
    linked += sum(len(m.group()) for m in _LINK.finditer(_BADGE.sub("", paragraph)))
    return linked <= len(paragraph) / 2


def _excerpt(nb) -> str:
    """The first prose paragraph after the title, on one line ("" when there is none)."""
    seen_title = False
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        text = _text(cell.source)
        if not seen_title:
            lines = text.splitlines()
            heading = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
            if heading is None:
                continue
            seen_title = True
            text = "\n".join(lines[heading + 1:])
        for paragraph in re.split(r"\n\s*\n", text):
            paragraph = paragraph.strip()
            if paragraph and _is_prose(paragraph):
                return " ".join(paragraph.split())
    return ""


def _tags(stem: str) -> list[str]:
    """The base tags plus one from the file name: ``02_cross_attention_onehot`` gives ``cross-attention``."""
    words = [w for w in re.split(r"[_\-\s]+", stem.lower()) if w]
    if words and words[0].isdigit():
        words = words[1:]
    tag = "-".join(words[:2])
    return BASE_TAGS + ([tag] if tag and tag not in BASE_TAGS else [])


def _has_outputs(nb) -> bool:
    return any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def _without_setup_cell(nb):
    """A copy of ``nb`` without its first code cell that mentions ``google.colab`` (the Colab set-up)."""
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "google.colab" in _text(cell.source):
            del nb.cells[i]
            break
    return nb


def _date(date) -> dt.date:
    if date is None:
        return dt.date.today()
    if isinstance(date, dt.datetime):
        return date.date()
    if isinstance(date, dt.date):
        return date
    try:
        return dt.date.fromisoformat(str(date))
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}") from None


def front_matter(title: str, date: dt.date, tags: list[str], excerpt: str) -> str:
    """A YAML block; strings are JSON-quoted (JSON strings are valid YAML), the date is bare so YAML reads a date."""
    dump = lambda value: json.dumps(value, ensure_ascii=False)  # noqa: E731
    return (f"---\ntitle: {dump(title)}\ndate: {date.isoformat()}\ntags: {dump(tags)}\n"
            f"excerpt: {dump(excerpt)}\n---\n\n")


def export_post(notebook_path, out_dir, date=None) -> Path:
    """Write ``out_dir/<date>-<stem>.md`` and its figures in ``out_dir/<stem>_files/``; return the .md's path."""
    # Development dependencies (pip install -e ".[dev]"): imported here so the rest of the CLI runs without them.
    import nbformat
    from nbconvert import MarkdownExporter

    notebook_path, out_dir, date = Path(notebook_path), Path(out_dir), _date(date)
    if not notebook_path.is_file():
        raise FileNotFoundError(f"no notebook at {notebook_path}")
    nb = nbformat.read(notebook_path, as_version=4)
    if not _has_outputs(nb):
        raise ValueError(f"{notebook_path.name} has no outputs: execute it first "
                         f"(e.g. jupyter nbconvert --to notebook --execute --inplace {notebook_path})")
    stem = notebook_path.stem
    files_dir = f"{stem}_files"
    body, resources = MarkdownExporter().from_notebook_node(
        _without_setup_cell(nb), resources={"unique_key": stem, "output_files_dir": files_dir})

    # The figures (and markdown attachments): nbconvert names them "<stem>_files/<stem>_<cell>_<index>.png".
    figures = out_dir / files_dir
    figures.mkdir(parents=True, exist_ok=True)
    written = set()
    for name, data in resources.get("outputs", {}).items():
        target = out_dir / name
        if target.resolve().parent != figures.resolve():
            raise ValueError(f"unexpected output file name {name!r} in {notebook_path.name}")
        target.write_bytes(data if isinstance(data, bytes) else str(data).encode())
        written.add(target.name)
    for old in figures.iterdir():  # figures of an earlier export that this one no longer has
        if old.is_file() and old.name not in written:
            old.unlink()
    if not any(figures.iterdir()):  # no figures: no empty folder
        figures.rmdir()

    header = front_matter(_title(nb, stem), date, _tags(stem), _excerpt(nb))
    post = out_dir / f"{date.isoformat()}-{stem}.md"  # Jekyll publishes _posts/YYYY-MM-DD-name.md
    post.write_text(header + body.lstrip("\n"), encoding="utf-8")
    return post


def export_all(notebooks_dir, out_dir, date=None) -> list[Path]:
    """Export every ``*.ipynb`` of ``notebooks_dir`` (sorted by name); return the paths of the .md files."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise FileNotFoundError(f"no notebook folder at {notebooks_dir}")
    notebooks = sorted(notebooks_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no .ipynb files in {notebooks_dir}")
    return [export_post(path, out_dir, date=date) for path in notebooks]
