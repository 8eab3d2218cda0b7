"""What awslab's HTML pages share (the report, commands/report_page.py; the class's grade sheet,
commands/grade_page.py): the page's frame and style, and verify's results as a table with their
evidence and fix.

Self-contained by design: no script, no font, no URL; everything a page shows is in its own bytes,
so it opens offline, attaches to an e-mail and prints. A status is a word in its cell (PASS, FAIL,
...) and a colour, never a colour alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape

from awslab.commands.drawing_svg import FONT, html_page
from awslab.errors import UsageError

STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "WARN": "warn", "SKIP": "skip", "ERROR": "fail"}

CSS = f"""
body {{ font-family: {FONT}; color: #1f2328; margin: 1.5rem; line-height: 1.4; }}
h1 {{ font-size: 1.5rem; margin: 0 0 .3rem; }} h2 {{ margin-top: 2rem; border-bottom: 1px solid #d0d7de; }}
nav a {{ margin-right: 1rem; }}
figure {{ margin: 0; overflow-x: auto; }}
figure svg {{ max-width: 100%; height: auto; }}
table {{ border-collapse: collapse; width: 100%; font-size: .88rem; margin: .5rem 0 1rem; }}
th, td {{ border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }}
th {{ background: #f6f8fa; }}
td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.pass {{ color: #1a7f37; }} .fail {{ color: #cf222e; font-weight: bold; }} .warn {{ color: #9a6700; }}
.skip {{ color: #57606a; }}
td.cell.pass {{ background: #dafbe1; }} td.cell.fail {{ background: #ffebe9; }} td.cell.skip {{ background: #f6f8fa; }}
tr.row-fail > td {{ background: #ffebe9; }} tr.row-fail > td.cell.pass {{ background: #dafbe1; }}
code {{ font-size: .85em; background: #f6f8fa; padding: 0 .2em; word-break: break-word; }}
.cards {{ display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }}
.card {{ border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem .9rem; min-width: 10rem; }}
.card b {{ display: block; font-size: 1.3rem; }}
.note {{ color: #57606a; font-size: .9rem; }}
details {{ margin: .4rem 0; }} summary {{ cursor: pointer; }}
@media print {{ body {{ margin: 0; }} figure {{ overflow: visible; }} nav {{ display: none; }}
  h2 {{ break-after: avoid; }} svg, tr {{ break-inside: avoid; }} }}
"""


def esc(text) -> str:
    return escape(str(text), {'"': "&quot;"})


def shell(title: str, body: str, css: str = "") -> str:
    """A whole page: ``title`` and ``body`` (HTML), awslab's style plus ``css``."""
    return html_page(title, CSS + css, body)


def status(word: str) -> str:
    return f'<span class="{STATUS_CLASS.get(word, "skip")}">{esc(word)}</span>'


def fix_of(r: dict) -> str:
    return f"<code>{esc(r['hint'])}</code>" if r.get("hint") else ""


def results_table(results: list[dict]) -> str:
    """verify's results (``Result.as_dict()``): id, status, evidence, the fix for a FAIL, the control."""
    rows = [f'<tr class="{"row-fail" if r["status"] == "FAIL" else ""}"><td><code>{esc(r["id"])}</code></td>'
            f'<td>{status(r["status"])}</td><td>{esc(r.get("detail") or "")}</td><td>{fix_of(r)}</td>'
            f'<td>{esc(r.get("control") or "")}</td></tr>' for r in results]
    return ("<table><thead><tr><th>check</th><th>result</th><th>evidence</th><th>fix</th><th>AWS control</th></tr>"
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


def check_out_path(out: str) -> Path:
    """-o's file, refused before any AWS call when it cannot be written (exit 2)."""
    path = Path(out)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"-o {out} is a directory", "name a file, e.g. -o report.html")
    if not folder.is_dir():
        raise UsageError(f"cannot write {out}: the folder {folder} does not exist", "create it, or name another file")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {out}: permission denied", "name a file in a folder you can write to")
    return path


def write_page(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}", "name a file in a folder you can write to") from None
