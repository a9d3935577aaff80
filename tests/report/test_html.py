"""report.html: self-contained, rendered from the report's Markdown, checked in a real headless browser."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import pytest
from reportkit import fill

from prunebench.report import write_report
from prunebench.report.html import HTML_FILE, markdown_to_html

#: Injected into a copy of the page: records script errors and failed loads, then writes what it
#: found (images, which are broken, errors) into the DOM for --dump-dom to print.
CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(e.message || ('failed to load ' + (e.target.src || e.target.href || e.target.tagName))), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40));
  const r = document.createElement('pre'); r.id = 'prunebench-check';
  r.textContent = JSON.stringify({images: imgs.length, broken: broken, errors: window.__errors,
                                  tables: document.querySelectorAll('table').length});
  document.body.appendChild(r);
});
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") and os.geteuid() == 0 and Path("/etc/debian_version").exists():
        pytest.fail("chromium missing although this is root on Debian: `make browser` should have installed it")
    pytest.skip("no chromium here: `make browser` installs Debian's package (root on Debian only)")


def _browser(args: list[str], profile: Path) -> str:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def page_check(page: Path, tmp: Path) -> dict:
    """Load `page` in headless Chromium and return what the injected checker saw."""
    copy = tmp / f"checked-{page.name}"
    copy.write_text(page.read_text().replace("<head>", "<head>" + CHECK, 1))
    dom = _browser(["--dump-dom", copy.as_uri()], tmp / "profile")
    m = re.search(r'<pre id="prunebench-check">(.*?)</pre>', dom, re.S)
    assert m, f"the page never finished loading: {dom[-500:]}"
    return json.loads(html.unescape(m.group(1)))


def test_html_report_renders_in_a_browser_and_a_screenshot_is_taken(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    fill(exp)
    write_report(exp)
    page = exp / HTML_FILE
    text = page.read_text()
    assert 'src="file:' not in text and not re.search(r'src="(?!data:image/png;base64,)', text)  # self-contained
    pngs = sorted(p.name for p in exp.glob("*.png"))
    assert "hand-l1norm-30--curves.png" in pngs  # training curves from the store's per-epoch metrics
    assert text.index("Summary (the paper's layout)") < text.index("<h2>hand</h2>")  # the summary on top
    assert "Provenance" in text and "l1norm-60%" in text
    seen = page_check(page, tmp_path)
    assert seen["errors"] == [] and seen["broken"] == []
    assert seen["images"] == len(pngs) and seen["tables"] >= 1 + 3  # summary + one per method table
    shot = tmp_path / "report-screenshot.png"
    _browser([f"--screenshot={shot}", "--window-size=1280,1800", "--hide-scrollbars", page.as_uri()], tmp_path / "profile")
    img = matplotlib.image.imread(shot)
    assert img.shape[:2] == (1800, 1280) and img.std() > 0.01  # something was drawn


def test_the_browser_check_catches_broken_images_and_script_errors(tmp_path: Path) -> None:
    """The check above must be able to fail."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                    '<img alt="broken" src="data:image/png;base64,AAAA"><script>undefinedFunction();</script></body></html>')  # fmt: skip
    seen = page_check(page, tmp_path)
    assert seen["broken"] == ["broken"] and len(seen["errors"]) >= 1


def test_markdown_subset(tmp_path: Path) -> None:
    body, shown = markdown_to_html(
        ["# T", "", "para `code` and **bold** <x>", "", "- one", "- two", "", "| a | b |", "|---|---|", "| 1 | 2 |", "",
         "![missing](nope.png)"], tmp_path)  # fmt: skip
    assert "<h1>T</h1>" in body and "<code>code</code>" in body and "<strong>bold</strong> &lt;x&gt;" in body
    assert "<ul><li>one</li><li>two</li></ul>" in body
    assert "<thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody>" in body
    assert "missing figure nope.png" in body and shown == {"nope.png"}
    nested, _ = markdown_to_html(["- **m** vs x", "  - sub *em* 2 * 3", "- next"], tmp_path)
    assert nested == "<ul><li><strong>m</strong> vs x<ul><li>sub <em>em</em> 2 * 3</li></ul></li><li>next</li></ul>"
