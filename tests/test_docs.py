"""The README, docs/ and registry/ link to one another by file and by section: every relative link and
every ``#anchor`` must land, so moving a section shows up here rather than as a dead link on GitHub."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "registry" / "README.md",
        ROOT / "genre" / "experiments" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)

_FENCE = re.compile(r"^```.*?^```", flags=re.DOTALL | re.MULTILINE)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """The page without its code blocks (a ``#`` there is a shell comment, a ``[x](y)`` is code)."""
    return _FENCE.sub("", path.read_text())


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to hyphens,
    and a repeated heading numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", _prose(path), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_the_slugs_are_githubs():
    page = ROOT / "docs" / "results.md"
    assert "tuning-nested-cross-validation-on-features_30_seccsv" in anchors(page)
    assert "embedded-synthetic-dataset-genre-main---data-embedded" in anchors(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_lands(page):
    broken = []
    for target in _LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        landing = (page.parent / file).resolve() if file else page
        if not landing.exists():
            broken.append(f"{target}: no file {landing}")
        elif anchor and (landing.suffix != ".md" or anchor not in anchors(landing)):
            broken.append(f"{target}: no section #{anchor} in {landing.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readmes_layout_names_every_subpackage_and_top_level_entry():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    layout = layout[: layout.index("\n## ", 1)]
    packages = {p.parent.name for p in (ROOT / "genre").glob("*/__init__.py")}
    missing = sorted(name for name in packages if not re.search(rf"(^|[ ,])\s*{name}/", layout, re.M))
    assert not missing, f"README's layout does not show genre/{missing}"
    design_card = [
        "pyproject.toml", "MLproject", "experiments/", "genre/", "tests/", "conda.yaml", "registry/"
    ]  # fmt: skip
    assert [entry for entry in design_card if not (ROOT / entry.rstrip("/")).exists()] == []
    assert all(re.search(rf"^{re.escape(entry)}\s", layout, re.M) for entry in design_card)


def test_the_readmes_map_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    linked = {target.partition("#")[0] for target in _LINK.findall(_prose(ROOT / "README.md"))}
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert sorted(pages - linked) == [], "docs pages the README's map does not link"
    assert "## Docs" in readme
