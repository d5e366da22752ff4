"""Every relative link in the course resolves inside the repository, and nothing cites a file that
a learner who clones the repository does not have.

Checked links: every relative Markdown link ``[text](path#anchor)`` in README.md, data/README.md,
docs/*.md, the notebooks' markdown cells and the docstrings and comments of defectlib/. The path
must exist inside the repository; an ``#anchor`` into a Markdown file must be one of its headings'
GitHub anchors. A plain mention ``docs/papers.md#anchor`` (in a docstring, a comment, a string)
must name a heading of docs/papers.md too. Links to http(s) URLs are not checked.

Forbidden anywhere in the repository: citations of the developers' private notes (REFERENCE.md)
and paths into ``../shared``, the folder beside the developers' checkout. Two exceptions: this
file, and ``../shared/datasets``, which commands in the READMEs, a benchmark and the tests use only
as an example data root (any folder of datasets works; ``defectlib data fetch`` downloads the public
ones). The CI script in ``.ci/`` runs on the project's own CI machine, where ``../shared`` exists,
and is not scanned.
"""
from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
PAPERS = REPO / "docs" / "papers.md"

# what the repository's .gitignore leaves out, plus the CI machinery (see the module docstring)
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", "runs", "build",
             "dist", "node_modules", ".ci"}
FORBIDDEN = [
    (re.compile(r"REFERENCE\.md"), "cites REFERENCE.md, which is not in the repository"),
    (re.compile(r"\bREFERENCE(?: notes| section|\s*§|\s+\d)"), "cites the REFERENCE notes"),
    (re.compile(r"\.\./shared(?!/datasets)"), "points into ../shared, which a learner does not have"),
]
LINK = re.compile(r"\[(?P<text>[^\]\n]*)\]\((?P<target>[^()\s]+)(?:\s+\"[^\"]*\")?\)")
PAPERS_MENTION = re.compile(r"docs/papers\.md#([\w-]+)")
FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"``.+?``|`[^`\n]+`", re.S)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)


# --- helpers -------------------------------------------------------------------------------------
def without_code(markdown: str) -> str:
    """``markdown`` without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: link texts kept, lower case, punctuation dropped (letters,
    digits, ``_``, ``-`` and spaces stay), spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def github_anchors(markdown: str) -> set[str]:
    """Every heading anchor of ``markdown``; a repeated heading gets ``-1``, ``-2``... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub("", markdown)):
        slug = github_anchor(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def markdown_links(markdown: str) -> list[str]:
    """The targets of the Markdown links in ``markdown``, outside code."""
    return [m.group("target") for m in LINK.finditer(without_code(markdown))]


def broken_links(markdown: str, source: Path, repo: Path = REPO) -> list[tuple[str, str]]:
    """``(target, reason)`` for each relative link of ``markdown`` (written in ``source``) that does
    not resolve to a file or folder of ``repo``, or whose ``#anchor`` is not a heading of the
    Markdown file it points into."""
    bad = []
    for target in markdown_links(markdown):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):      # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (source.parent / unquote(path)).resolve() if path else source.resolve()
        if not file.is_relative_to(repo.resolve()):
            bad.append((target, "outside the repository"))
        elif not file.exists():
            bad.append((target, "no such file"))
        elif anchor and file.suffix == ".md" and unquote(anchor) not in github_anchors(file.read_text()):
            bad.append((target, f"no heading with anchor #{anchor} in {file.name}"))
    return bad


def citations(text: str) -> list[str]:
    """What in ``text`` cites something outside the repository (see :data:`FORBIDDEN`)."""
    return [f"{m.group()!r}: {why}" for pattern, why in FORBIDDEN for m in pattern.finditer(text)]


def python_prose(source: str) -> str:
    """The docstrings and comments of a Python module, where its documentation links live."""
    parts = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
    parts += [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
              if tok.type == tokenize.COMMENT]
    return "\n".join(parts)


def notebook_markdown(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def documents() -> list[tuple[Path, str]]:
    """``(file, the text whose links are checked)`` for every document of the course."""
    docs = [REPO / "README.md", REPO / "data" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    out = [(p, p.read_text(encoding="utf-8")) for p in docs]
    out += [(p, notebook_markdown(p)) for p in sorted((REPO / "notebooks").glob("*.ipynb"))]
    out += [(p, python_prose(p.read_text(encoding="utf-8")))
            for p in sorted((REPO / "defectlib").rglob("*.py")) if not SKIP_DIRS & set(p.parts)]
    return out


def repository_text_files():
    """Every text file of the repository that git would track (see .gitignore), but this one."""
    for path in sorted(REPO.rglob("*")):
        rel = path.relative_to(REPO)
        ignored = (SKIP_DIRS & set(rel.parts) or any(p.endswith(".egg-info") for p in rel.parts)
                   or (rel.parts[0] == "data" and rel != Path("data/README.md")))
        if not path.is_file() or ignored or path == Path(__file__).resolve():
            continue
        try:
            yield rel, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue                                            # images and other binaries


# --- the checks can fail -------------------------------------------------------------------------
def test_anchors_follow_github():
    md = "# A · B\n\n## `code` and *x*\n\n```\n# not a heading\n```\n\n## Twice\n\n## Twice\n"
    assert github_anchors(md) == {"a--b", "code-and-x", "twice", "twice-1"}
    assert github_anchor("DANet (notebook 01)") == "danet-notebook-01"
    assert github_anchor("A [linked](x.md) heading") == "a-linked-heading"


def test_broken_links_are_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("# Notes\n\n## Two words\n\n## Two words\n")
    (tmp_path / "sub").mkdir()
    page = tmp_path / "sub" / "page.md"
    page.write_text(
        "[ok](../docs/notes.md#two-words), [second](../docs/notes.md#two-words-1), [dir](../docs/),\n"
        "[web](https://example.org/nowhere.md#x), [in code: `[x](../docs/missing.md)`],\n"
        "```\n[fenced](../docs/missing.md)\n```\n"
        "[missing file](../docs/missing.md) [missing anchor](../docs/notes.md#three-words)\n"
        "[outside](../../shared/REFERENCE.md) [self](#nowhere)\n")
    assert broken_links(page.read_text(), page, tmp_path) == [
        ("../docs/missing.md", "no such file"),
        ("../docs/notes.md#three-words", "no heading with anchor #three-words in notes.md"),
        ("../../shared/REFERENCE.md", "outside the repository"),
        ("#nowhere", "no heading with anchor #nowhere in page.md")]


def test_citations_are_found():
    text = ("see REFERENCE.md section 2; (REFERENCE 3); the project's REFERENCE notes; ../shared/papers/x;\n"
            "--data-root ../shared/datasets; metavar=\"REFERENCE\"; a REFERENCE run")
    assert citations(text) == [
        "'REFERENCE.md': cites REFERENCE.md, which is not in the repository",
        "'REFERENCE 3': cites the REFERENCE notes", "'REFERENCE notes': cites the REFERENCE notes",
        "'../shared': points into ../shared, which a learner does not have"]


def test_python_prose_is_docstrings_and_comments():
    source = ('"""Module [a](a.md)."""\nx = "[not prose](b.md)"\n\n\ndef f():\n'
              '    """Function [c](c.md)."""\n    return OPENERS[name](path)  # comment [d](d.md)\n')
    assert markdown_links(python_prose(source)) == ["a.md", "c.md", "d.md"]


# --- the repository ------------------------------------------------------------------------------
def test_the_paper_notes_exist_with_a_section_per_paper():
    anchors = github_anchors(PAPERS.read_text(encoding="utf-8"))
    assert {"danet", "severstal-two-stage", "ocinet", "synthetic-data"} <= anchors


DOCUMENTS = documents()


@pytest.mark.parametrize("path,text", DOCUMENTS, ids=[str(p.relative_to(REPO)) for p, _ in DOCUMENTS])
def test_relative_links_resolve(path, text):
    bad = broken_links(text, path)
    assert not bad, f"{path.relative_to(REPO)}: broken links {bad}"


def test_mentions_of_the_paper_notes_name_a_heading():
    anchors = github_anchors(PAPERS.read_text(encoding="utf-8"))
    bad = [f"{rel}: #{a}" for rel, text in repository_text_files()
           for a in PAPERS_MENTION.findall(text) if a not in anchors]
    assert not bad, f"docs/papers.md has no such heading: {bad}"


def test_nothing_cites_files_outside_the_repository():
    bad = [f"{rel}: {c}" for rel, text in repository_text_files() for c in citations(text)]
    assert not bad, "cite docs/papers.md instead:\n" + "\n".join(bad)
