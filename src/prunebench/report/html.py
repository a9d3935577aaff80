"""report.html: the Markdown report as one self-contained page (every plot inlined as base64).

The HTML is rendered from the very Markdown lines of report.md (one source for both), with a
converter for the small subset the writer emits: headings, paragraphs, bullet lists, pipe
tables, images, `code` and **bold**. PNGs in the experiment folder that the Markdown does not
show (figures other modules leave there) are added at the end, so nothing drawn is left out.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from pathlib import Path

from prunebench.outputs import atomic_write_text

HTML_FILE = "report.html"
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_EM = re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 12.5px; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; font-size: 12px; }
img { max-width: 100%; display: block; margin: .8em 0; border: 1px solid #eee; }
figure { margin: 0; } figcaption { color: #666; font-size: 12px; }
"""


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    out = _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)
    return _EM.sub(lambda m: f"<em>{m.group(1)}</em>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _image(exp_dir: Path, alt: str, name: str) -> str:
    path = exp_dir / name
    if not path.is_file() or path.suffix.lower() != ".png":
        return f"<p><em>missing figure {html.escape(name)}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>")  # fmt: skip


def _sublist(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>" if items else ""


def markdown_to_html(lines: Iterable[str], exp_dir: Path) -> tuple[str, set[str]]:
    """The body HTML of the writer's Markdown, and the names of the images it showed."""
    out: list[str] = []
    shown: set[str] = set()
    rows: list[list[str]] = []
    items: list[tuple[str, list[str]]] = []  # bullet text, its indented sub-bullets
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}{_sublist(sub)}</li>" for i, sub in items) + "</ul>")
            items.clear()
        if rows:
            head, *body = rows
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</tbody></table>")  # fmt: skip
            rows.clear()

    for raw in "\n".join(lines).splitlines():
        line = raw.rstrip()
        if line.startswith("|"):
            if para or items:
                flush()
            if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.replace(" ", "")):  # skip the separator row
                rows.append(_cells(line))
            continue
        if rows:
            flush()
        if not line:
            flush()
        elif m := re.match(r"^(#{1,4}) (.*)$", line):
            flush()
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif m := _IMAGE.match(line):
            flush()
            out.append(_image(exp_dir, m.group(1), m.group(2)))
            shown.add(m.group(2))
        elif line.startswith("- "):
            if para:
                flush()
            items.append((line[2:], []))
        elif items and re.match(r"^\s{2,}- ", line):
            items[-1][1].append(line.strip()[2:])
        else:
            para.append(line)
    flush()
    return "\n".join(out), shown


def write_html(exp_dir: Path, md_lines: list[str], title: str) -> Path:
    """Write `exp_dir/report.html` from the report's Markdown lines; returns its path."""
    body, shown = markdown_to_html(md_lines, exp_dir)
    extra = sorted(p.name for p in exp_dir.glob("*.png") if p.name not in shown)
    if extra:
        body += "\n<h2>Other figures in this folder</h2>\n" + "\n".join(_image(exp_dir, p, p) for p in extra)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
    path = exp_dir / HTML_FILE
    atomic_write_text(path, page)
    return path
