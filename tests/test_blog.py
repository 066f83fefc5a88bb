"""``condiff.tools.blog``: notebooks to Markdown posts with front matter, figures as files, no Colab set-up cell.

Most tests export a small notebook built here with nbformat (a real PNG output drawn by matplotlib), so
they need neither the shipped notebooks nor their execution. The last one exports notebook 01 if it
has been executed (``$CONDIFF_NOTEBOOKS_DIR`` points it at another folder) and is skipped otherwise.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from condiff.__main__ import main
from condiff.tools.blog import BASE_TAGS, export_all, export_post

PNG = b"\x89PNG\r\n\x1a\n"
NOTEBOOKS_DIR = Path(os.environ.get("CONDIFF_NOTEBOOKS_DIR", Path(__file__).resolve().parent.parent / "notebooks"))
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\((?!https?://)([^)\s]+)\)")  # local images: not the Colab badge

TITLE_CELL = """# 9. A test post

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/condiff/condiff/blob/main/notebooks/09_test_post.ipynb)

**Series:** [1. Unconditional DDPM](01_unconditional_ddpm.ipynb) · **9. A test post**

A first paragraph with "quotes", a colon: here, a back\\slash and *emphasis*,
spread over two lines.

A second paragraph, not the excerpt."""
EXCERPT = ('A first paragraph with "quotes", a colon: here, a back\\slash and *emphasis*, '
           "spread over two lines.")
SETUP_CODE = 'import sys\nif "google.colab" in sys.modules:\n    print("SETUP-ONLY-MARKER")\nQUICK = False'


def png_bytes() -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global backend to switch

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_notebook(path: Path, executed: bool = True) -> Path:
    plot = new_code_cell("plot_something()", execution_count=2 if executed else None)
    if executed:
        plot.outputs = [new_output("display_data", data={
            "image/png": base64.b64encode(png_bytes()).decode("ascii"), "text/plain": "<Figure size 100x100>"})]
    nb = new_notebook(cells=[new_markdown_cell(TITLE_CELL), new_markdown_cell("## Set-up"),
                             new_code_cell(SETUP_CODE, execution_count=1 if executed else None),
                             plot, new_markdown_cell("The end.")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                "language_info": {"name": "python"}})
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def front_matter(markdown: str) -> dict:
    """The ``key: value`` lines between the leading ``---`` fences; values read as JSON (the bare date as text)."""
    lines = markdown.splitlines()
    assert lines[0] == "---", "the post must start with a front-matter fence"
    end = lines.index("---", 1)
    fields = {}
    for line in lines[1:end]:
        key, _, value = line.partition(": ")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    try:
        import yaml
    except ImportError:
        return fields
    parsed = yaml.safe_load("\n".join(lines[1:end]))  # a YAML reader must agree
    assert {**parsed, "date": str(parsed["date"])} == fields
    return fields


@pytest.fixture
def notebook(tmp_path) -> Path:
    return write_notebook(tmp_path / "09_test_post.ipynb")


# ---------------------------------------------------------------------------------------------
# A small notebook built here
# ---------------------------------------------------------------------------------------------

def test_export_post_writes_markdown_with_front_matter(notebook, tmp_path):
    post = export_post(notebook, tmp_path / "posts", date="2026-11-27")
    assert post == tmp_path / "posts" / "2026-11-27-09_test_post.md" and post.is_file()
    fields = front_matter(post.read_text(encoding="utf-8"))
    assert fields == {"title": "9. A test post", "date": "2026-11-27", "tags": [*BASE_TAGS, "test-post"],
                      "excerpt": EXCERPT}


def test_figures_are_files_the_markdown_links_to(notebook, tmp_path):
    post = export_post(notebook, tmp_path / "posts", date="2026-11-27")
    links = IMAGE_LINK.findall(post.read_text(encoding="utf-8"))
    files = sorted((tmp_path / "posts" / "09_test_post_files").iterdir())
    assert len(files) == 1 and files[0].suffix == ".png" and files[0].read_bytes()[:8] == PNG
    assert links == [f"09_test_post_files/{files[0].name}"]  # relative to the post, as MkDocs and Jekyll want
    assert (post.parent / links[0]).read_bytes() == files[0].read_bytes()


def test_body_keeps_code_and_prose_but_not_the_setup_cell(notebook, tmp_path):
    body = export_post(notebook, tmp_path, date="2026-11-27").read_text(encoding="utf-8")
    assert "plot_something()" in body and "```python" in body
    assert "# 9. A test post" in body and "A second paragraph" in body and "The end." in body
    assert "google.colab" not in body and "SETUP-ONLY-MARKER" not in body
    assert "google.colab" in nbformat.read(notebook, as_version=4).cells[2].source  # the notebook is untouched


def test_default_date_is_today(notebook, tmp_path):
    fields = front_matter(export_post(notebook, tmp_path).read_text(encoding="utf-8"))
    assert fields["date"] == dt.date.today().isoformat()


def test_exporting_again_replaces_the_figures(notebook, tmp_path):
    stale = tmp_path / "09_test_post_files" / "09_test_post_99_0.png"
    stale.parent.mkdir()
    stale.write_bytes(PNG)
    export_post(notebook, tmp_path)
    export_post(notebook, tmp_path)
    assert not stale.exists() and len(list(stale.parent.iterdir())) == 1


def test_export_all_exports_every_notebook_in_order(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    for stem in ("02_b_b", "01_a_a"):
        write_notebook(folder / f"{stem}.ipynb")
    posts = export_all(folder, tmp_path / "out", date=dt.date(2026, 1, 2))
    assert [p.name for p in posts] == ["2026-01-02-01_a_a.md", "2026-01-02-02_b_b.md"]
    assert front_matter(posts[0].read_text(encoding="utf-8"))["tags"][-1] == "a-a"


def test_cli_blog_prints_each_written_path(notebook, tmp_path, capsys):
    main(["blog", "--out", str(tmp_path / "site"), "--date", "2026-11-27", str(notebook)])
    assert capsys.readouterr().out.split() == [str(tmp_path / "site" / "2026-11-27-09_test_post.md")]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

def test_missing_notebook_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ipynb"):
        export_post(tmp_path / "nope.ipynb", tmp_path)


def test_unexecuted_notebook_is_refused(tmp_path):
    path = write_notebook(tmp_path / "09_test_post.ipynb", executed=False)
    with pytest.raises(ValueError, match="execute it first"):
        export_post(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_date_is_refused(notebook, tmp_path):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        export_post(notebook, tmp_path, date="27/11/2026")


def test_cli_errors_exit_with_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["blog", "--out", str(tmp_path), str(tmp_path / "nope.ipynb")])
    assert exit.value.code == 2 and "no notebook" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The real notebook 01, once executed
# ---------------------------------------------------------------------------------------------

def test_executed_notebook_01_exports_its_figures(tmp_path):
    path = NOTEBOOKS_DIR / "01_unconditional_ddpm.ipynb"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    nb = nbformat.read(path, as_version=4)
    if not any("image/png" in output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", [])):
        pytest.skip(f"{path.name} has no PNG outputs (not executed)")
    post = export_post(path, tmp_path, date="2026-11-27")
    text = post.read_text(encoding="utf-8")
    images = sorted((tmp_path / "01_unconditional_ddpm_files").glob("*.png"))
    assert images and all(image.read_bytes()[:8] == PNG for image in images)
    assert sorted(IMAGE_LINK.findall(text)) == sorted(f"01_unconditional_ddpm_files/{i.name}" for i in images)
    assert front_matter(text)["title"] == "1. An unconditional DDPM"
    assert "google.colab" not in text
