"""``condiff.tools.blog``: notebooks to Markdown posts with front matter, figures as files, no Colab set-up cell.

Most tests export a small notebook built here with nbformat (a real PNG output drawn by matplotlib), so
they need neither the shipped notebooks nor their execution. The last one exports notebook 01 if it
has been executed (``$CONDIFF_NOTEBOOKS_DIR`` points it at another folder) and is skipped otherwise.
"""
from __future__ import annotations

import ast
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

import condiff
from condiff.__main__ import main
from condiff.tools.blog import (
    BASE_TAGS,
    export_all,
    export_post,
    plain_text,
    post_wording,
    reader_mode,
    rewrite_links,
)

PNG = b"\x89PNG\r\n\x1a\n"
NOTEBOOKS_DIR = Path(os.environ.get("CONDIFF_NOTEBOOKS_DIR", Path(__file__).resolve().parent.parent / "notebooks"))
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\((?!https?://)([^)\s]+)\)")  # local images: not the Colab badge

TITLE_CELL = """# 9. A test post

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/condiff/condiff/blob/main/notebooks/09_test_post.ipynb)

**Series:** [1. Unconditional DDPM](01_unconditional_ddpm.ipynb) · **9. A test post**

A first paragraph with "quotes", a colon: here, a back\\slash and *emphasis*,
spread over two lines, with maths $\\beta_t$ and [a link](https://example.org).

A second paragraph, not the excerpt."""
EXCERPT = ('A first paragraph with "quotes", a colon: here, a back\\slash and emphasis, '
           "spread over two lines, with maths β_t and a link.")  # plain text
SETUP_CODE = 'import sys\nif "google.colab" in sys.modules:\n    print("SETUP-ONLY-MARKER")\nQUICK = False'
PLOT_CODE = ('# NBVAL_CHECK_OUTPUT\nsteps = 5 if QUICK else 25\n'
             'plot_something(steps, title="A figure title")  # a comment')
TRAIN_CODE = ('TRAIN = False  # True: train it\nif TRAIN:\n    out = Path("runs") / "x"\n    train(out)\n'
              'if QUICK:  # the smoke run\n    import tempfile\n    train(tempfile.mkdtemp())\n')
WORDS = "This notebook builds on [notebook 1](01_unconditional_ddpm.ipynb); notebooks 4 and 5 follow."


def png_bytes() -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global backend to switch

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_notebook(path: Path, executed: bool = True) -> Path:
    plot = new_code_cell(PLOT_CODE, execution_count=2 if executed else None)
    if executed:
        plot.outputs = [new_output("display_data", data={
            "image/png": base64.b64encode(png_bytes()).decode("ascii"), "text/plain": "<Figure size 100x100>"})]
    nb = new_notebook(cells=[new_markdown_cell(TITLE_CELL), new_markdown_cell("## Set-up\nThis cell installs."),
                             new_code_cell(SETUP_CODE, execution_count=1 if executed else None),
                             plot, new_markdown_cell(WORDS), new_code_cell(TRAIN_CODE),
                             new_markdown_cell("The end, see [the cards](../weights/README.md).")],
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
                      "excerpt": EXCERPT, "math": True}


def test_figures_are_files_the_markdown_links_to(notebook, tmp_path):
    post = export_post(notebook, tmp_path / "posts", date="2026-11-27")
    links = IMAGE_LINK.findall(post.read_text(encoding="utf-8"))
    files = sorted((tmp_path / "posts" / "09_test_post_files").iterdir())
    assert len(files) == 1 and files[0].suffix == ".png" and files[0].read_bytes()[:8] == PNG
    assert links == [f"09_test_post_files/{files[0].name}"]  # relative to the post, as MkDocs and Jekyll want
    assert (post.parent / links[0]).read_bytes() == files[0].read_bytes()


def test_body_keeps_code_and_prose_but_not_the_setup_cell(notebook, tmp_path):
    body = export_post(notebook, tmp_path, date="2026-11-27").read_text(encoding="utf-8")
    assert "plot_something(steps" in body and "```python" in body
    assert "A second paragraph" in body and "The end" in body
    assert "google.colab" not in body and "SETUP-ONLY-MARKER" not in body
    assert "## Set-up" not in body and "This cell installs" not in body  # the heading goes with its cell
    assert f"git clone {condiff.REPO_URL}" in body  # a one-line install note instead
    assert "google.colab" in nbformat.read(notebook, as_version=4).cells[2].source  # the notebook is untouched


def test_post_reads_as_a_post(notebook, tmp_path):
    text = export_post(notebook, tmp_path, date="2026-11-27").read_text(encoding="utf-8")
    body = text.split("---\n", 2)[2]
    assert "# 9. A test post" not in body  # the title is in the front matter only
    assert "steps = 25\n" in body and "QUICK" not in body  # reader-mode code, comments kept
    assert "TRAIN" not in body and "tempfile" not in body and "train(" not in body  # no dead branches
    assert "This post builds on [part 1](" in body and "parts 4 and 5 follow" in body
    assert body.count("colab.research.google.com") == 1  # the install note's link, not the badge too
    assert front_matter(text)["math"] is True  # the excerpt's $\\beta_t$
    assert "# a comment" in body and "NBVAL" not in body
    assert "![A figure title](09_test_post_files/" in body and "![png]" not in body
    assert f"]({condiff.REPO_URL}/blob/main/weights/README.md)" in body  # repository links are absolute
    assert f"]({condiff.REPO_URL}/blob/main/notebooks/01_unconditional_ddpm.ipynb)" in body  # no post for it here


def test_rewrite_links_between_posts_and_to_the_repository():
    posts = {"01_a.ipynb": "2026-01-01-01_a.md"}
    text = ("[one](01_a.ipynb), [two](./01_a.ipynb#part), [w](../weights/), [x](https://x.org/a.ipynb), [y](#here), "
            "`f[0](a)`")
    assert rewrite_links(text, posts) == (
        f"[one](2026-01-01-01_a.md), [two](2026-01-01-01_a.md#part), [w]({condiff.REPO_URL}/tree/main/weights), "
        "[x](https://x.org/a.ipynb), [y](#here), `f[0](a)`")


def test_reader_mode_keeps_the_full_run_and_the_layout():
    code = "n = 8 if QUICK else 32  # cases\nf(3 if QUICK else (4 if x else 5))\n"
    assert reader_mode(code) == "n = 32  # cases\nf(4 if x else 5)\n"
    assert reader_mode("not python (") == "not python ("


def test_reader_mode_drops_what_the_switches_turn_off():
    code = ("TRAIN = False  # the switch\nif TRAIN or QUICK:\n    run = recipe if TRAIN else recipe.quick()\n"
            "    train(run)\nif QUICK:\n    a = 1\nelif ready:\n    b = 2  # kept\nelse:\n    c = 3\nd = 4\n")
    assert reader_mode(code) == "if ready:\n    b = 2  # kept\nelse:\n    c = 3\nd = 4\n"
    assert reader_mode("TRAIN = False\nprint(TRAIN)\n") == "TRAIN = False\nprint(TRAIN)\n"  # still read: kept
    assert reader_mode("print(f\"{n} cases{', quick' if QUICK else ''} ({'8' if QUICK else 'all 64'})\")\n") == (
        'print(f"{n} cases (all 64)")\n')


def test_post_wording_and_plain_text():
    assert post_wording("This notebook, [notebook 3](03_a.ipynb), notebooks 4 and 5, `notebook 2`") == (
        "This post, [part 3](03_a.ipynb), parts 4 and 5, `notebook 2`")
    assert plain_text("The $\\beta_1 \\dots \\beta_T$ of [Ho et al.](https://x.org), *what* and `t`") == (
        "The β_1 ... β_T of Ho et al., what and t")


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


def test_export_all_exports_every_notebook_in_order_one_date_each(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    for stem in ("02_b_b", "01_a_a"):
        write_notebook(folder / f"{stem}.ipynb")
    posts = export_all(folder, tmp_path / "out", date=dt.date(2026, 1, 2), interval_days=3)
    assert [p.name for p in posts] == ["2026-01-02-01_a_a.md", "2026-01-05-02_b_b.md"]
    assert front_matter(posts[0].read_text(encoding="utf-8"))["tags"][-1] == "a-a"
    with pytest.raises(ValueError, match="interval_days"):
        export_all(folder, tmp_path / "out", interval_days=0)


def test_export_all_opens_with_an_intro_post_from_the_readme(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "01_a_a.ipynb")
    (tmp_path / "README.md").write_text("# My series\n\nWhat it is about, in [the package](condiff/).\n\n"
                                        "![a picture](nbs/images/x.png)\n\n*A caption. Made with `python -m "
                                        "condiff sample --out a.png`, on the 2-core CPU.*\n\n## Later\n\n"
                                        "Not in the intro.\n")
    intro, post = export_all(folder, tmp_path / "out", date="2026-01-02")
    assert intro.name == "2026-01-02-00_series.md" and post.name == "2026-01-09-01_a_a.md"
    text = intro.read_text(encoding="utf-8")
    assert front_matter(text)["title"] == "My series" and "Not in the intro" not in text
    assert f"[the package]({condiff.REPO_URL}/tree/main/condiff)" in text
    assert f"]({condiff.REPO_URL}/raw/main/nbs/images/x.png)" in text
    assert "- [9. A test post](2026-01-09-01_a_a.md): A first paragraph" in text
    assert "*A caption.*" in text and "Made with" not in text and "2-core" not in text  # no maintainer text


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
# The real notebooks, once executed
# ---------------------------------------------------------------------------------------------

def undefined_names(code: str) -> set[str]:
    """Names a script loads but never binds (assignments, imports, defs, loops, ...) nor gets from builtins."""
    import builtins

    tree = ast.parse(code)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound


def test_undefined_names_finds_what_a_post_never_defines():
    assert undefined_names("import os\nx = 1\nprint(x, os.sep, [y for y in QUICK], LIMIT)") == {"QUICK", "LIMIT"}


def test_executed_notebooks_export_as_a_series(tmp_path):
    paths = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        pytest.skip(f"no notebooks in {NOTEBOOKS_DIR}")
    if not all(any("image/png" in o.get("data", {}) for c in nbformat.read(p, as_version=4).cells
                   for o in c.get("outputs", [])) for p in paths):
        pytest.skip("the notebooks are not executed")
    readme = Path(__file__).resolve().parent.parent / "README.md"
    posts = export_all(NOTEBOOKS_DIR, tmp_path, date="2026-11-27", interval_days=7, readme=readme)
    assert len(posts) == len(paths) + 1  # the intro, then one post per notebook
    texts = {post.name: post.read_text(encoding="utf-8") for post in posts}
    fields = {name: front_matter(text) for name, text in texts.items()}
    assert len({f["date"] for f in fields.values()}) == len(posts), "one date per post"
    titles = [f["title"] for f in fields.values()]
    assert len(set(titles)) == len(titles), f"duplicate titles: {titles}"
    assert fields["2026-12-04-01_unconditional_ddpm.md"]["title"] == "1. An unconditional DDPM"
    names = set(texts)
    for name, text in texts.items():
        body = text.split("---\n", 2)[2]
        assert f"# {fields[name]['title']}\n" not in body, f"{name}: the title twice (front matter and body)"
        prose = re.sub(r"```.*?```|`[^`\n]*`", "", body, flags=re.DOTALL)  # links live outside code
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if target.endswith(".ipynb") or ".ipynb#" in target:  # only absolute links to the notebook itself
                assert target.startswith(("https://colab.research.google.com/github/", condiff.REPO_URL)), (
                    f"{name}: a link to a notebook file: {target}")
            elif target.endswith(".md") and "://" not in target:
                assert target in names, f"{name}: a link to a post that was not written: {target}"
            elif not target.startswith(("http", "#")):
                assert (tmp_path / target).is_file(), f"{name}: a local link to nothing: {target}"
        assert "![png]" not in body, f"{name}: figures without alt text"
        assert "google.colab" not in body and "Set-up" not in body, f"{name}: the set-up cell survived"
        assert "NBVAL" not in body, f"{name}: a test-runner marker in the shown code"
        code = "\n".join(re.findall(r"```python\n(.*?)```", body, re.DOTALL))
        assert not undefined_names(code), f"{name}: shown code uses names the post never defines"
        # Only the code reader mode runs: no switches, no smoke-run branches.
        for dead in ("QUICK", "if TRAIN", "TRAIN =", ".quick()", "tempfile"):
            assert dead not in code, f"{name}: reader mode never runs {dead!r}, yet the post shows it"
        # A post's words: no "this notebook", "notebook 3" or "cell" in the prose.
        words = re.sub(r"\]\([^)]*\)", "]", prose)
        for wording in (r"\bthis\s+notebook\b", r"\bnotebooks?\s+\d", r"\bcells?\b"):
            found = re.search(wording, words, re.IGNORECASE)
            assert not found, f"{name}: notebook wording in a post: {found and found.group()!r}"
        colab = body.count("colab.research.google.com/github/")
        assert colab == (0 if name.endswith("00_series.md") else 1), f"{name}: {colab} Colab links, not one"
        excerpt = fields[name]["excerpt"]
        assert excerpt and not re.search(r"\]\(|[`$*\\]", excerpt), f"{name}: the excerpt is not plain text: {excerpt}"
        has_tex = bool(re.search(r"\$[^$\s][^$\n]*\$", prose))
        assert fields[name].get("math", False) == has_tex, f"{name}: math front matter does not match the maths"
    intro = texts["2026-11-27-00_series.md"]
    for maintainer in ("python -m condiff", "2-core", "Made with"):
        assert maintainer not in intro, f"the intro post carries maintainer text: {maintainer!r}"
