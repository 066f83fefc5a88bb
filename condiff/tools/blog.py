"""Export executed notebooks as a series of Markdown blog posts, with YAML front matter and figures as files.

    python -m condiff blog --out site/_posts                      # every notebooks/*.ipynb + a series intro
    python -m condiff blog --out site/_posts --date 2026-11-27 --interval-days 7
    python -m condiff blog --out docs/posts notebooks/03_time_sum_multilabel.ipynb

Each notebook ``NN_some_name.ipynb`` becomes ``OUT/DATE-NN_some_name.md`` (the name Jekyll wants) and its figures
``OUT/NN_some_name_files/NN_some_name_<cell>_<index>.png``, which the Markdown links relatively. The front
matter holds ``title`` (the first ``# `` heading, which leaves the body so themes print it once), ``date``,
``tags`` and ``excerpt`` (the first paragraph of prose after the title). Exporting the whole folder dates
the posts one ``interval_days`` apart from the start date, after a short intro post made from the README.

A post reads as a post, not as a notebook:
- links between notebooks point to the posts; other repository paths (``../weights/README.md``) become
  absolute URLs under ``condiff.REPO_URL``;
- the Colab set-up cell (the first code cell mentioning ``google.colab``) and a set-up heading above it
  become a one-line install note;
- the shown code is only the code reader mode runs: ``QUICK`` (the notebooks' smoke-test switch, defined in
  the set-up cell) and ``TRAIN`` (the notebooks' training switch, off by default) read as False, so
  ``A if QUICK else B`` reads ``B``, ``if TRAIN:`` and ``if QUICK:`` blocks go (their ``else`` stays), the
  ``TRAIN = False`` switch goes once nothing reads it, and a code cell left empty goes;
- the words are a post's: "this notebook" reads "this post", "notebook 3" reads "part 3";
- one Colab link: the install note's (the title cell's badge goes);
- figures get their title (the ``title=`` of the plotting call, else the section heading) as alt text;
- the excerpt is plain text (no Markdown, no TeX), and a post with TeX maths (``$...$``) gets ``math: true``
  in its front matter, the switch that Jekyll themes such as Chirpy and al-folio read to load MathJax or
  KaTeX (other sites must load one of them in their layout).
The intro post leaves out the README's maintainer sentences (how a figure was made, on which machine).
Execute the notebooks first: a notebook without outputs is refused.
"""
from __future__ import annotations

import ast
import copy
import datetime as dt
import json
import posixpath
import re
from pathlib import Path

from .. import REPO_URL

BASE_TAGS = ["diffusion", "diffusers", "pytorch", "conditional-generation"]
BRANCH = "main"

_LINK = re.compile(r"!?\[[^\]]*\]\([^)]*\)")  # [text](url) and ![alt](url); a badge is one nested in the other
_NOT_PROSE = ("#", "```", "~~~", "$$", "<", "|", ">", "- ", "* ", "+ ")  # headings, code, math, HTML, tables, lists
_BADGE = re.compile(r"\[!\[[^\]]*\]\([^)]*\)\]\([^)]*\)")
_TARGET = re.compile(r"(\]\()([^)\s]+)(\))")  # the url of a markdown link or image
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)  # fenced blocks and inline code spans
_FIGURE = re.compile(r"!\[[^\]]*\]\(([^)\s]+_(\d+)_\d+\.png)\)")  # nbconvert's <stem>_files/<stem>_<cell>_<i>.png


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


def _first_prose(text: str) -> str:
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if paragraph and _is_prose(paragraph):
            return " ".join(paragraph.split())
    return ""


def _excerpt(nb) -> str:
    """The first prose paragraph after the title, as plain text on one line ("" when there is none)."""
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
        paragraph = _first_prose(text)
        if paragraph:
            return plain_text(post_wording(paragraph))  # a post's words: the intro lists it
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


def post_name(stem: str, date) -> str:
    """``DATE-stem.md``: the file (and link target) of a post."""
    return f"{_date(date).isoformat()}-{stem}.md"


# ---------------------------------------------------------------------------------------------
# From notebook to post: links, the set-up cell, reader-mode code, the title, alt text
# ---------------------------------------------------------------------------------------------

def repo_url(path: str, folder: bool = False) -> str:
    """The GitHub page of ``path`` (relative to the repository root) under ``REPO_URL``."""
    return f"{REPO_URL}/{'tree' if folder else 'blob'}/{BRANCH}/{path.strip('/')}".rstrip("/")


def rewrite_links(markdown: str, posts: dict[str, str], base: str = "notebooks") -> str:
    """Links to series notebooks -> their posts; other relative links -> absolute repository URLs.

    ``posts`` maps notebook file names (``01_x.ipynb``) to post file names; ``base`` is the folder, relative
    to the repository root, that the markdown's relative links start from. Absolute URLs, anchors and the
    post's own figure files are kept.
    """
    def target(match: re.Match) -> str:
        url = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", url) or url.startswith("#"):
            return match.group(0)
        path, _, anchor = url.partition("#")
        anchor = f"#{anchor}" if anchor else ""
        name = posixpath.basename(path)
        if name in posts:
            return f"{match.group(1)}{posts[name]}{anchor}{match.group(3)}"
        if re.search(r"_files/[^/]+\.png$", path):  # a figure exported beside the post
            return match.group(0)
        resolved = posixpath.normpath(posixpath.join(base, path))
        if resolved.startswith(".."):
            return match.group(0)
        folder = path.endswith("/") or "." not in posixpath.basename(resolved)
        return f"{match.group(1)}{repo_url(resolved, folder)}{anchor}{match.group(3)}"

    parts = _CODE.split(markdown)  # odd parts are code: left as written
    return "".join(part if i % 2 else _TARGET.sub(target, part) for i, part in enumerate(parts))


def install_note(notebook_name: str) -> str:
    """The one line that replaces the set-up cell in a post."""
    colab = f"https://colab.research.google.com/github/{REPO_URL.split('github.com/', 1)[-1]}/blob/{BRANCH}"
    return (f"*To run this post's code: `git clone {REPO_URL} && pip install -e condiff`, "
            f"or [open it in Colab]({colab}/notebooks/{notebook_name}).*")


OFF = ("QUICK", "TRAIN")  # the notebooks' switches, both False in reader mode


def _is_off(node) -> bool:
    return (isinstance(node, ast.Name) and node.id in OFF) or (isinstance(node, ast.Constant) and node.value is False)


def _reader_expressions(code: str, tree) -> str:
    """``A if QUICK else B`` -> ``B``, ``X or QUICK`` -> ``X`` (and the same for ``TRAIN``), at their positions."""
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def span(node) -> tuple[int, int]:
        return offsets[node.lineno - 1] + node.col_offset, offsets[node.end_lineno - 1] + node.end_col_offset

    edits = []  # (start, end, replacement)
    for node in ast.walk(tree):
        if isinstance(node, ast.IfExp) and _is_off(node.test):
            edits.append((*span(node), ast.get_source_segment(code, node.orelse)))
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and any(map(_is_off, node.values)):
            kept = [ast.get_source_segment(code, v) for v in node.values if not _is_off(v)]
            edits.append((*span(node), " or ".join(kept) if kept else "False"))
    outermost = [e for e in edits if not any(o[0] <= e[0] and e[1] <= o[1] and o != e for o in edits)]
    for start, end, replacement in sorted(outermost, reverse=True):
        code = code[:start] + replacement + code[end:]
    return code


def _dead_statement(code: str, tree):
    """The first statement reader mode never runs, as (first line, last line, replacement lines), or None."""
    lines = code.splitlines(keepends=True)
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_off(node.test):
            kept = []
            if node.orelse:  # the else (or elif) body, moved to the if's indentation
                body = lines[node.orelse[0].lineno - 1:node.orelse[-1].end_lineno]
                if isinstance(node.orelse[0], ast.If) and lines[node.orelse[0].lineno - 1].lstrip().startswith("elif"):
                    first = lines[node.orelse[0].lineno - 1]
                    body[0] = first.replace("elif", "if", 1)
                    shift = len(first) - len(first.lstrip()) - node.col_offset
                else:
                    shift = node.orelse[0].col_offset - node.col_offset
                kept = [line[shift:] if line[:shift].strip() == "" else line for line in body]
            return node.lineno, node.end_lineno, kept
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in OFF and node.targets[0].id not in loaded):
            return node.lineno, node.end_lineno, []  # the switch itself, once nothing reads it
    return None


def reader_mode(code: str) -> str:
    """The code as reader mode runs it: ``QUICK`` and ``TRAIN`` read as False and what they switch off goes.

    ``A if QUICK else B`` -> ``B``, ``X or QUICK`` -> ``X``; ``if TRAIN:`` / ``if QUICK:`` blocks are removed
    (an ``else`` body stays, dedented); ``TRAIN = False`` is removed when nothing else reads ``TRAIN``.
    Expressions are edited at their positions, so comments and layout stay as written; code that does
    not parse is returned unchanged.
    """
    try:
        code = _reader_expressions(code, ast.parse(code))
        while (dead := _dead_statement(code, ast.parse(code))) is not None:
            first, last, kept = dead
            lines = code.splitlines(keepends=True)
            if kept and not kept[-1].endswith("\n"):
                kept[-1] += "\n"
            code = "".join(lines[:first - 1] + kept + lines[last:])
    except SyntaxError:
        return code
    # A replaced field of an f-string, f"{n} scenes{', quick' if QUICK else ''}", leaves a constant: inline it.
    return "\n".join(re.sub(r"\{'([^'{}]*)'\}|\{\"([^\"{}]*)\"\}", lambda m: m.group(1) or m.group(2) or "", line)
                     if re.search(r"\bf[\"']", line) else line for line in code.split("\n"))


def _part(m: re.Match) -> str:  # "Notebook 3" -> "Part 3", "notebooks 4" -> "parts 4"
    return f"{'P' if m.group(1) == 'N' else 'p'}art{m.group(2)}{m.group(3)}{m.group(4)}"


_WORDING = [  # a notebook's words -> a post's; applied outside inline code and link targets
    (re.compile(r"\b([Tt])his(\s+)notebook\b"), lambda m: f"{m.group(1)}his{m.group(2)}post"),
    (re.compile(r"\b([Nn])otebook(s?)(\s+)(\d)"), _part),
]


def post_wording(text: str) -> str:
    """"this notebook" -> "this post", "notebook 3" -> "part 3", "notebooks 4 and 5" -> "parts 4 and 5"."""
    def words(part: str) -> str:
        for pattern, replace in _WORDING:
            part = pattern.sub(replace, part)
        return part

    pieces = re.split(r"(`[^`\n]*`|\]\([^)\s]*\))", text)  # odd pieces: inline code and link targets
    return "".join(piece if i % 2 else words(piece) for i, piece in enumerate(pieces))


_GREEK = {name: chr(code) for name, code in [
    ("alpha", 0x3B1), ("beta", 0x3B2), ("gamma", 0x3B3), ("delta", 0x3B4), ("epsilon", 0x3B5),
    ("theta", 0x3B8), ("lambda", 0x3BB), ("mu", 0x3BC), ("sigma", 0x3C3), ("tau", 0x3C4), ("phi", 0x3C6)]}
_TEX_WORDS = {**_GREEK, "dots": "...", "ldots": "...", "cdot": "·", "times": "x", "le": "<=", "ge": ">="}


def _tex_to_text(tex: str) -> str:
    """``\\beta_1 \\dots \\beta_T`` -> ``β_1 ... β_T``: TeX commands to plain characters, braces dropped."""
    text = re.sub(r"\\([A-Za-z]+)", lambda m: _TEX_WORDS.get(m.group(1), ""), tex)
    return " ".join(re.sub(r"[{}\\]", "", text).split())


def plain_text(markdown: str) -> str:
    """One paragraph of Markdown as plain text: links -> their text, no images, code, emphasis or TeX."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", markdown)  # images and badges
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = re.sub(r"\$\$?([^$]+)\$\$?", lambda m: _tex_to_text(m.group(1)), text)  # maths -> characters
    text = re.sub(r"`([^`]*)`", r"\1", text)  # inline code
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)  # bold
    text = re.sub(r"(?<![\w*])[*_]([^*_\s][^*_]*?)[*_](?![\w*])", r"\1", text)  # emphasis
    return " ".join(text.split())


_MAINTAINER = re.compile(r"Made with|python -m condiff|2-core")  # how a figure was made, and where


def _drop_maintainer_sentences(text: str) -> str:
    """The README's opening without sentences about how a figure was made (commands, machines)."""
    codes = []

    def hide(match):  # code spans hold dots that are not sentence ends
        codes.append(match.group(0))
        return f"\0{len(codes) - 1}\0"

    def show(piece: str) -> str:
        return re.sub(r"\0(\d+)\0", lambda m: codes[int(m.group(1))], piece)

    pieces = re.split(r"(?:(?<=[.!?])|(?<=[.!?]\*))(\s+)", re.sub(r"`[^`\n]*`", hide, text))
    kept = []  # sentences and the spaces after them
    for sentence, space in zip(pieces[::2], pieces[1::2] + [""]):
        if not _MAINTAINER.search(show(sentence)):
            kept += [sentence, space]
        elif sentence.endswith("*") and not sentence.startswith("*") and kept:  # it closed an emphasis
            kept[-2] += "*"
            kept[-1] = space
    return show("".join(kept)).strip()


def _figure_title(source: str) -> str | None:
    """The ``title=`` of the plotting call in a cell, when it is a plain string."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "title":
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
            return None  # an f-string's text depends on the run: the section heading says more
    return None


def _alt_texts(nb) -> dict[int, str]:
    """Cell index -> alt text for its figures: the figure's title, else the section heading above it."""
    texts, heading = {}, ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found = [line.lstrip("#").strip() for line in _text(cell.source).splitlines() if line.startswith("#")]
            heading = found[-1] if found else heading
        else:
            title = _figure_title(_text(cell.source)) or (f"Figure: {heading}" if heading else "Figure")
            texts[i] = title.replace("[", "(").replace("]", ")")
    return texts


def as_post(nb, notebook_name: str, posts: dict[str, str]):
    """A copy of ``nb`` ready for nbconvert: links, set-up note, reader-mode code, no title heading."""
    from nbformat.v4 import new_markdown_cell

    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "google.colab" in _text(cell.source):
            nb.cells[i] = new_markdown_cell(install_note(notebook_name))
            previous = nb.cells[i - 1] if i > 0 else None
            if previous is not None and previous.cell_type == "markdown" and \
                    re.match(r"#+\s*set-?up", _text(previous.source).strip(), re.IGNORECASE):
                del nb.cells[i - 1]  # the "## Set-up" heading (and its words about the cell) go with it
            break
    title_done = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = _text(cell.source)
            if not title_done and re.search(r"^# ", text, re.MULTILINE):
                text = re.sub(r"^# [^\n]*\n*", "", text, count=1, flags=re.MULTILINE)  # the front matter has it
                text = re.sub(r"^\[!\[Open In Colab\][^\n]*\n*", "", text, flags=re.MULTILINE)  # the note links
                title_done = True
            cell.source = post_wording(rewrite_links(text, posts))
        elif cell.cell_type == "code":  # reader-mode code, without the test runner's markers (# NBVAL_...)
            code = reader_mode(re.sub(r"^#\s*NBVAL_\w+[^\n]*\n?", "", _text(cell.source), flags=re.MULTILINE))
            cell.source = post_wording(code)
    nb.cells = [c for c in nb.cells if c.cell_type != "code" or _text(c.source).strip() or c.get("outputs")]
    return nb


def front_matter(title: str, date: dt.date, tags: list[str], excerpt: str, math: bool = False) -> str:
    """A YAML block; strings are JSON-quoted (JSON strings are valid YAML), the date is bare so YAML reads a date.

    ``math`` adds ``math: true``, which tells the site's theme to load MathJax or KaTeX."""
    dump = lambda value: json.dumps(value, ensure_ascii=False)  # noqa: E731
    return (f"---\ntitle: {dump(title)}\ndate: {date.isoformat()}\ntags: {dump(tags)}\n"
            f"excerpt: {dump(excerpt)}\n" + ("math: true\n" if math else "") + "---\n\n")


def has_math(markdown: str) -> bool:
    """True when the text (outside code) holds TeX maths: ``$...$`` or ``$$...$$``."""
    prose = _CODE.sub("", markdown)
    return bool(re.search(r"\$\$.+?\$\$|\$[^$\s][^$\n]*\$", prose, re.DOTALL))


def export_post(notebook_path, out_dir, date=None, posts: dict[str, str] | None = None) -> Path:
    """Write ``out_dir/<date>-<stem>.md`` and its figures in ``out_dir/<stem>_files/``; return the .md's path.

    ``posts`` maps notebook names to post names for the links between posts (default: the notebooks beside
    this one, dated like it).
    """
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
    if posts is None:
        posts = {p.name: post_name(p.stem, date) for p in notebook_path.parent.glob("*.ipynb")}
    stem = notebook_path.stem
    files_dir = f"{stem}_files"
    post_nb = as_post(nb, notebook_path.name, posts)
    body, resources = MarkdownExporter().from_notebook_node(
        post_nb, resources={"unique_key": stem, "output_files_dir": files_dir})
    alt = _alt_texts(post_nb)
    body = _FIGURE.sub(lambda m: f"![{alt.get(int(m.group(2)), 'Figure')}]({m.group(1)})", body)

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

    header = front_matter(_title(nb, stem), date, _tags(stem), _excerpt(nb), math=has_math(body))
    post = out_dir / post_name(stem, date)  # Jekyll publishes _posts/YYYY-MM-DD-name.md
    post.write_text(header + body.lstrip("\n"), encoding="utf-8")
    _remove_older_posts(out_dir, stem, post)
    return post


def _remove_older_posts(out_dir: Path, stem: str, keep: Path) -> None:
    """The same notebook's posts of earlier exports (other dates; front matter first): one post per notebook."""
    for old in out_dir.glob(f"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]-{stem}.md"):
        if old != keep and old.read_text(encoding="utf-8", errors="replace").startswith("---\ntitle: "):
            old.unlink()


def export_intro(readme_path, out_dir, date, posts: list[Path]) -> Path:
    """A short first post from the README: its title and opening (up to the first ``## ``), then the series."""
    readme_path, date = Path(readme_path), _date(date)
    lines = Path(readme_path).read_text(encoding="utf-8").splitlines()
    heading = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    title = lines[heading][2:].strip() if heading is not None else "The series"
    start = heading + 1 if heading is not None else 0
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    opening = _drop_maintainer_sentences("\n".join(lines[start:end]).strip())
    opening = re.sub(r"(!\[[^\]]*\]\()(?!https?://)([^)\s]+)\)",
                     lambda m: f"{m.group(1)}{REPO_URL}/raw/{BRANCH}/{m.group(2)})", opening)  # images: raw files
    opening = rewrite_links(opening, {}, base="")
    items = []
    for post in posts:
        text = post.read_text(encoding="utf-8")
        fields = dict(line.split(": ", 1) for line in text.split("---\n")[1].splitlines())
        items.append(f"- [{json.loads(fields['title'])}]({post.name}): {json.loads(fields['excerpt'])}")
    body = f"{opening}\n\n## The posts\n\n" + "\n".join(items) + (
        f"\n\nThe code, the weights and the notebooks these posts were made from: [{REPO_URL}]({REPO_URL}).\n")
    intro = Path(out_dir) / post_name("00_series", date)
    intro.write_text(front_matter(title, date, BASE_TAGS, plain_text(_first_prose(opening)), math=has_math(body))
                     + body, encoding="utf-8")
    _remove_older_posts(Path(out_dir), "00_series", intro)
    return intro


def export_all(notebooks_dir, out_dir, date=None, interval_days: int = 7, readme=None) -> list[Path]:
    """Export every ``*.ipynb`` of ``notebooks_dir`` (sorted by name), one ``interval_days`` apart.

    With a README (default: the one beside ``notebooks_dir``, if any) the series opens with an intro post
    on the start date and the notebooks follow. Returns the paths of the .md files, intro first.
    """
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise FileNotFoundError(f"no notebook folder at {notebooks_dir}")
    notebooks = sorted(notebooks_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no .ipynb files in {notebooks_dir}")
    if interval_days < 1:
        raise ValueError(f"interval_days must be a whole number of days >= 1, got {interval_days}")
    readme = Path(readme) if readme is not None else notebooks_dir.parent / "README.md"
    start = _date(date)
    first = 1 if readme.is_file() else 0  # the intro takes the start date
    dates = {p.name: start + dt.timedelta(days=interval_days * (first + i)) for i, p in enumerate(notebooks)}
    posts = {name: post_name(Path(name).stem, day) for name, day in dates.items()}
    written = [export_post(p, out_dir, date=dates[p.name], posts=posts) for p in notebooks]
    if first:
        written.insert(0, export_intro(readme, out_dir, start, written))
    return written
