"""`awslab class verify --html`: the grade sheet page, from a hand-made class (what each student's
`verify --output json` printed), so the page is checked with no AWS; the browser opens it in
test_report.py's one Chromium test."""

from __future__ import annotations

import json
import re

from awslab.commands import classes
from awslab.commands.classes import GROUPS, Done, GradePage, Student, grade, sheet_csv
from awslab.commands.grade_page import anchor, page

CHECKS = [("inventory.network.vpc", "vpc-1 available"), ("spec.db.multi-az", "Multi-AZ"),
          ("network.host-internet-route", "igw"), ("path.app-to-db", "allowed by sg-db"),
          ("path.app-to-cache", "allowed by sg-cache"), ("security.db-not-public", "private"),
          ("live.host-to-db", "SELECT 1 in 3 ms")]
BROKEN = {  # student -> (check id, evidence, fix)
    "s02": ("path.app-to-db", "no inbound rule on sg-db (week6-s02-db) admits tcp/5432 from the host",
            "aws ec2 authorize-security-group-ingress --group-id sg-db --protocol tcp --port 5432 --source-group sg-app"),
    "s04": ("security.db-not-public", "week6-s04-db is publicly accessible",
            "aws rds modify-db-instance --db-instance-identifier week6-s04-db --no-publicly-accessible --apply-immediately"),
}


def graded_class(n: int = 5) -> tuple[list[Done], list[dict]]:
    """``n`` students' verify outputs, s02 and s04 broken (BROKEN), and the sheet `grade` makes of them."""
    done = []
    for i in range(1, n + 1):
        name = f"s{i:02d}"
        results = []
        for cid, detail in CHECKS:
            broken = BROKEN.get(name)
            if broken and broken[0] == cid:
                results.append({"id": cid, "status": "FAIL", "detail": broken[1], "hint": broken[2], "control": None})
            else:
                results.append({"id": cid, "status": "PASS", "detail": detail, "hint": None, "control": None})
        done.append(Done(Student(name, f"week6-{name}"), 1 if name in BROKEN else 0, 3.0, json.dumps(results), ""))
    return done, grade(done)


def grade_page_of(done: list[Done], sheet: list[dict], diagrams: dict | None = None) -> str:
    return page("week6", GROUPS, sheet, {d.student.name: classes.verify_results(d) for d in done},
                diagrams if diagrams is not None else {d.student.name: f'<svg xmlns="http://www.w3.org/2000/svg"><text>'
                                                       f'diagram of {d.student.stack}</text></svg>' for d in done})


def _rows(text: str) -> dict[str, str]:
    body = text[text.index("<tbody>"):text.index("</tbody>")]
    return {re.search(r'id="row-student_(s\d+)"', r).group(1): r for r in body.split("<tr ")[1:]}


def test_grade_page__two_broken_labs__exactly_their_rows_red_each_with_its_failing_check_and_fix():
    done, sheet = graded_class()
    text = grade_page_of(done, sheet)
    rows = _rows(text)
    red = sorted(s for s, r in rows.items() if r.startswith('class="row-fail"'))
    assert red == ["s02", "s04"]
    for student, (cid, evidence, fix) in BROKEN.items():
        row = rows[student]
        assert cid in row and evidence in row and f"fix: <code>{fix}</code>" in row
        assert '<td class="cell fail">✗ FAIL</td>' in row
        assert row.count('class="cell fail"') == 2   # the grade and the one group that failed, written not only coloured
    for student in ("s01", "s03", "s05"):
        assert "nothing failed" in rows[student] and "cell fail" not in rows[student]
    # The groups' cells: written counts beside the colour; the totals count the students per group.
    assert '<td class="cell fail">✗ 1/1</td>' in rows["s02"] and '<td class="cell fail">✗ 0/1</td>' in rows["s04"] and '<td class="cell pass">✓ 1/0</td>' in rows["s02"]
    assert "3 of 5 pass every check" in text
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_grade_page__each_row_opens_its_students_diagram__the_failing_ones_open():
    done, sheet = graded_class(3)
    text = grade_page_of(done, sheet)
    for d in done:
        aid = anchor(d.student.name)
        assert f'<a href="#{aid}">{d.student.name}</a>' in text
        section = text[text.index(f'<details id="{aid}"'):]
        section = section[:section.index("</details>")]
        assert f"diagram of {d.student.stack}" in section
        assert section.startswith(f'<details id="{aid}" open>') == (d.student.name in BROKEN)
    no_diagram = grade_page_of(done, sheet, diagrams={})
    assert no_diagram.count("No diagram: verify did not draw this stack") == 3


def test_grade_page__verify_that_did_not_run__the_row_says_why():
    done = [Done(Student("s01", "week6-s01"), 2, 1.0, "", "error: stack week6-s01 has no resources\n")]
    text = page("week6", GROUPS, grade(done), {"s01": classes.verify_results(done[0])}, {})
    assert 'class="row-fail"' in text and "verify did not run: error: stack week6-s01 has no resources" in text
    assert "– not run" in text


def test_grade_page_writer__children_draw_into_its_folder__csv_and_the_sheet_unchanged(tmp_path):
    done, sheet = graded_class(2)
    before = sheet_csv(sheet)
    out = tmp_path / "grades.html"
    with GradePage("week6", str(out), _Quiet()) as pages:
        argv = {d.student.name: pages.argv(d.student) for d in done}
        for d in done:   # what each child's `verify --diagram-to` does
            assert argv[d.student.name][0] == "--diagram-to"
            with open(argv[d.student.name][1], "w") as fh:
                fh.write(f"<svg><text>{d.student.stack} drawn</text></svg>")
        pages.write(done, sheet)
        folder = pages.folder.name
    text = out.read_text()
    assert "week6-s01 drawn" in text and "week6-s02 drawn" in text
    assert sheet_csv(sheet) == before and not (tmp_path / folder).exists()
    with GradePage("week6", None, _Quiet()) as pages:   # no --html: no flag for the children, nothing written
        assert pages.argv(done[0].student) == []


class _Quiet:
    def line(self, text: str) -> None:
        pass
