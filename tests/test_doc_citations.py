"""Every `docs/<file>.md §N` the code, presets and README cite exists, with a heading numbered N."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: `docs/methods.md §2.3-§2.5`, `docs/protocol.md §3, docs/methods.md §1.6`: the sections after each file name
CITATION = re.compile(r"docs/([\w-]+\.md)((?:\s*(?:[-–,;]|and)?\s*§\d+(?:\.\d+)*)+)")
SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.?\s", re.M)


def citations() -> list[tuple[Path, str, str]]:
    found = []
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "src").rglob("*.toml"), *(ROOT / "src").rglob("*.md"), ROOT / "README.md"]
    for path in sources:
        for m in CITATION.finditer(path.read_text(encoding="utf-8")):
            found += [(path, m.group(1), s) for s in SECTION.findall(m.group(2))]
    return found


def headings(doc: str) -> set[str]:
    return set(HEADING.findall((ROOT / "docs" / doc).read_text(encoding="utf-8")))


def test_every_cited_section_exists() -> None:
    cites = citations()
    assert len(cites) > 100  # the code does cite them (presets are under src/prunebench/presets)
    missing = [f"{p.relative_to(ROOT)}: docs/{doc} §{s}" for p, doc, s in cites
               if not (ROOT / "docs" / doc).is_file() or s not in headings(doc)]  # fmt: skip
    assert not missing, "citations of missing docs or sections:\n" + "\n".join(missing)


def test_no_bare_citations_left() -> None:
    """`docs/methods.md §5` without `docs/`, or a note that is not in the repository (`lessons.md`,
    `shared/reference`), points nowhere a reader can find."""
    # also `docs/protocol.md, §7.1`: one form only, the file name right before its section
    bare = re.compile(r"(?<![\w/\[])(?:methods|protocol)\.md\s*§|docs/(?:methods|protocol)\.md,\s*§")
    elsewhere = re.compile(r"\blessons\.md|shared/reference")  # docs/ links its own files relatively
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "src").rglob("*.toml"), *(ROOT / "src").rglob("*.md"), ROOT / "README.md"]
    found = [str(p.relative_to(ROOT)) for p in sources if bare.search(p.read_text(encoding="utf-8"))]
    found += [str(p.relative_to(ROOT)) for p in [*sources, *(ROOT / "docs").rglob("*.md")]
              if elsewhere.search(p.read_text(encoding="utf-8"))]
    assert not found


def test_the_checker_catches_a_bad_citation(tmp_path: Path) -> None:
    text = "see docs/methods.md §5.7 and docs/protocol.md §99.1, §5"
    secs = [(m.group(1), SECTION.findall(m.group(2))) for m in CITATION.finditer(text)]
    assert secs == [("methods.md", ["5.7"]), ("protocol.md", ["99.1", "5"])]
    assert "99.1" not in headings("protocol.md") and "5" in headings("protocol.md")
