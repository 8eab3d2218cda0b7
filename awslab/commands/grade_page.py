"""`awslab class verify --html`: the class's grade sheet as a page, from the sheet `grade` makes
(commands/classes.py), each student's verify results and their diagrams (SVGs drawn by each
student's own `verify --diagram-to`). Pure: tested on a hand-made class.

One row per student, one cell per check group coloured and written ("✗ 5/1": five passed, one
failed), the totals, and in the row each failure with its evidence and fix; the student's name
leads to their section below (open when they fail), which holds their diagram.
"""

from __future__ import annotations

from awslab.commands.diagram_model import diagram_id
from awslab.commands.pages import esc, shell

GROUP_MARK = {"pass": "✓", "fail": "✗", "skip": "–"}


def anchor(student: str) -> str:
    return diagram_id("student", student)


def _cell(value: str) -> tuple[str, str]:
    """A group's "passed/failed" as (class, text)."""
    if not value:
        return "skip", f"{GROUP_MARK['skip']} not run"
    passed, failed = (int(x) for x in value.split("/"))
    cls = "fail" if failed else "pass"
    return cls, f"{GROUP_MARK[cls]} {passed}/{failed}"


def _failures(row: dict, results: list[dict] | None) -> str:
    if results is None:   # verify did not run: grade's own words say why
        return "".join(f'<div class="fail">{esc(f)}</div>' for f in row["failures"])
    out = [f'<div><code class="fail">{esc(r["id"])}</code> {esc(r.get("detail") or "")}'
           + (f'<br>fix: <code>{esc(r["hint"])}</code>' if r.get("hint") else "") + "</div>"
           for r in results if r["status"] == "FAIL"]
    return "".join(out) or '<span class="pass">nothing failed</span>'


def page(class_name: str, groups: tuple[str, ...], sheet: list[dict], results: dict[str, list[dict] | None],
         diagrams: dict[str, str], when: str = "") -> str:
    """The grade sheet page. ``results`` and ``diagrams`` by student name (absent: not made)."""
    head = "".join(f"<th>{esc(g)}</th>" for g in groups)
    rows, sections = [], []
    for r in sheet:
        bad = r["grade"] != "PASS"
        cells = "".join('<td class="cell {0}">{1}</td>'.format(*_cell(r.get(g) or "")) for g in groups)
        aid = anchor(r["student"])
        rows.append(f'<tr class="{"row-fail" if bad else "row-pass"}" id="row-{aid}"><td><a href="#{aid}">{esc(r["student"])}</a>'
                    f'<br><span class="note">{esc(r["stack"])}</span></td>'
                    f'<td class="cell {"fail" if bad else "pass"}">{GROUP_MARK["fail" if bad else "pass"]} {esc(r["grade"])}</td>'
                    f'{cells}<td class="num">{r["passed"]}</td><td class="num">{r["failed"]}</td>'
                    f'<td class="num">{r["warned"]}</td><td>{_failures(r, results.get(r["student"]))}</td></tr>')
        svg = diagrams.get(r["student"])
        drawn = (f"<figure>{svg.strip()}</figure>" if svg else
                 '<p class="note">No diagram: verify did not draw this stack (it did not run, or found nothing).</p>')
        sections.append(f'<details id="{aid}"{" open" if bad else ""}><summary><b>{esc(r["student"])}</b> '
                        f'({esc(r["stack"])}): <span class="{"fail" if bad else "pass"}">{esc(r["grade"])}</span>, '
                        f'{r["passed"]} passed, {r["failed"]} failed</summary>{drawn}'
                        f'<p><a href="#row-{aid}">back to the sheet</a></p></details>')
    failing = [r for r in sheet if r["grade"] != "PASS"]
    per_group = "".join(
        f'<td class="num">{sum(1 for r in sheet if r.get(g) and _cell(r[g])[0] == "pass")} of {len(sheet)}</td>' for g in groups)
    totals = (f'<tr><th colspan="2">students passing</th>{per_group}<td class="num">{sum(r["passed"] for r in sheet)}</td>'
              f'<td class="num">{sum(r["failed"] for r in sheet)}</td><td class="num">{sum(r["warned"] for r in sheet)}</td>'
              f'<td>{len(sheet) - len(failing)} of {len(sheet)} pass every check</td></tr>')
    body = f"""<h1>Class {esc(class_name)}: grade sheet</h1>
<p class="note">{esc(len(sheet))} students{esc(", graded " + when) if when else ""} by <code>awslab class verify --html</code>:
<code>awslab verify</code> on each student's stack. A group's cell is its checks passed/failed (✓ every check passed,
✗ one failed, – not run); a failed row is red and lists each failure with its evidence and the command that fixes it.
A student's name opens their diagram.</p>
<div class="cards"><div class="card"><b class="pass">{len(sheet) - len(failing)}</b>pass every check</div>
<div class="card"><b class="{"fail" if failing else "pass"}">{len(failing)}</b>fail a check{": " if failing else ""}
{esc(", ".join(r["student"] for r in failing))}</div></div>
<table class="grades"><thead><tr><th>student</th><th>grade</th>{head}<th class="num">passed</th><th class="num">failed</th>
<th class="num">warned</th><th>what failed: evidence and fix</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
<tfoot>{totals}</tfoot></table>
<h2>Each student's stack</h2>
{chr(10).join(sections)}"""
    return shell(f"awslab class {class_name}: grade sheet", body, "table.grades td { white-space: normal; }")
