"""`awslab report`, `drill --report`'s figures and the pages in a real browser.

The page is built from hand-made data (test_diagram's World, made-up verify results, costs,
snapshots and figures), so the builders are checked with no AWS; one test opens a report page
and a grade page (test_grade_page's class) in headless Chromium from the system's packages: by
their DOM, with no console message, and a screenshot that is not blank. Two browser starts in all.
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from conftest import system_binary
from test_diagram import world
from test_grade_page import BROKEN, grade_page_of, graded_class

from awslab.commands import charts, figures
from awslab.commands.diagram_model import build
from awslab.commands.report_page import Report, page
from awslab.spec.lab import load_lab
from awslab.spec.model import Found


@pytest.fixture(scope="module")
def lab():
    return load_lab("week6")


def _timeline() -> dict:
    """A write every 10 ms from -1 s to +1 s around a failover asked at 0 s (t0 = 100), none
    acknowledged from +0.05 s to +0.35 s, three failed attempts in that gap."""
    t0 = 100.0
    acked = [(i, t0 + i / 100) for i in range(-100, 101) if not 5 <= i <= 35]
    return figures.timeline(acked, [t0 + 0.06, t0 + 0.2, t0 + 0.3], t0)


DRILL = {"name": "drill", "vpc": "vpc-1", "measured_at": "2026-12-06 10:00 UTC", "result": {
    "profile": {"words": "the local AWS's `instant` latency profile"},
    "commit": {"multi_az_ms_p50": 0.84, "multi_az_ms_p95": 1.03, "single_az_ms_p50": 0.51, "single_az_ms_p95": 0.73},
    "multi_az": {"downtime_s": 0.3, "acknowledged_writes_lost": 0, "writes_acknowledged": 170, "timeline": _timeline()},
    "read_replica": {"lag_ms_p50": 0.6, "lag_ms_p95": 1.4, "lag_ms_max": 2.9, "visible_after_ms_p50": 1.1,
                     "visible_after_ms_max": 5.8, "read_your_write_misses": 3, "read_your_write_tries": 20, "samples": 108},
    "cache_replica": {"downtime_s": 0.07, "acknowledged_writes_lost": 0, "writes_acknowledged": 362,
                      "timeline": _timeline()}}}
CACHING = {"name": "caching", "vpc": "vpc-1", "measured_at": "2026-12-06 10:05 UTC", "result": {
    "strategies": [{"strategy": s, "p50_ms": p50, "p95_ms": 14.0, "p99_ms": 18.0, "hit_ratio": hit, "db_reads_per_s": dbr,
                    "stale_reads": stale} for s, p50, hit, dbr, stale in (
        ("database-only", 15.3, 0.0, 63.4, 0), ("lazy-ttl", 0.21, 0.913, 48.0, 315), ("write-through", 0.18, 0.91, 47.7, 0))],
    "stampede": {"unprotected": {"readers": 16, "db_queries": 16}, "single_flight": {"readers": 16, "db_queries": 1}}}}
RESULTS = [{"id": "inventory.network.vpc", "status": "PASS", "detail": "vpc-1 available", "hint": None, "control": None},
           {"id": "path.app-to-db", "status": "FAIL", "detail": "no inbound rule on sg-db (week6-db) admits tcp/5432",
            "hint": "aws ec2 authorize-security-group-ingress --group-id sg-db --protocol tcp --port 5432 --source-group sg-app",
            "control": None},
           {"id": "path.app-to-cache", "status": "PASS", "detail": "allowed by sg-cache", "hint": None, "control": None},
           {"id": "security.db-not-public", "status": "PASS", "detail": "private", "hint": None, "control": "RDS.2"},
           {"id": "live.host-to-db", "status": "SKIP", "detail": "not run", "hint": None, "control": None}]
COST = [("instance (host.instance)", "i-host", 0.016), ("db-instance (db.primary)", "week6-db", 0.043),
        ("db-replica (db.replica.1)", "week6-db-replica-1", 0.021), ("replication-group (cache.group)", "week6-cache", 0.034)]
SNAPSHOTS = [{"service": "db", "id": "week6-20261206-100000", "type": "manual", "region": "us-east-1", "size_gib": 20,
              "status": "available", "monthly": 1.9},
             {"service": "db", "id": "rds:week6-db-2026-12-06", "type": "automated", "region": "us-east-1", "size_gib": 20,
              "status": "available", "monthly": 1.9}]


def report_of(lab, *, figs=None, stale=(), **w) -> str:
    t = build(world(**w), lab, "2026-12-06 10:10 UTC")
    return page(Report("week6", "us-east-1", "local", "week6", "2026-12-06 10:10 UTC", t, RESULTS, COST, SNAPSHOTS,
                       {"drill": DRILL, "caching": CACHING} if figs is None else figs, tuple(stale)))


def _svgs(text: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", text, flags=re.S)]


def test_timeline__an_outage_between_two_runs_of_writes__binned_with_its_window():
    tl = _timeline()
    assert tl["bin_s"] == 0.05 and tl["start_s"] == -1.0
    assert sum(tl["acked"]) == 170 and sum(tl["errors"]) == 3
    assert (tl["down_from_s"], tl["down_to_s"]) == (0.04, 0.36)   # the last ack before the first failure, the first after
    assert tl["acked"][22] == 0   # +0.1 s: nothing acknowledged in the outage
    many = figures.timeline([(i, i * 0.01) for i in range(10000)], [], 0.0)   # 100 s of writes: coarser bins, bounded
    assert len(many["acked"]) <= figures.MAX_BINS and many["down_from_s"] is None
    assert figures.timeline([], [], 0.0)["acked"] == []


def test_report_page__every_section_from_hand_made_data__self_contained_and_small(lab):
    text = report_of(lab, db_rule=False)
    assert len(text.encode()) < 1 << 20
    assert "<script" not in text and not re.search(r'(src|href)="(?!#)', text)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
    for svg in _svgs(text):   # every inline SVG is XML, with a title and a description for a screen reader
        assert svg.find("{http://www.w3.org/2000/svg}title") is not None
    # verify by group, the failure with its evidence and fix; its group marked FAIL in words
    assert '<h3 id="verify-path">path <span class="note">(1 PASS, 1 FAIL)</span> <span class="fail">FAIL</span></h3>' in text
    assert "no inbound rule on sg-db (week6-db) admits tcp/5432" in text
    assert "<code>aws ec2 authorize-security-group-ingress --group-id sg-db" in text
    # the diagram draws the revoked path BLOCKED; the cost adds up; snapshots: automated ones free
    assert "tcp/5432: BLOCKED" in text
    assert "$0.114/hour" in text and "$83.22" in text
    assert "free (automated)" in text and "$1.90/month" in text
    # the drill's charts: the outage named in text, the lag and commit figures written beside their bars
    assert "downtime 0.32 s (hatched): no writes acknowledged" in text
    assert "replay lag p95" in text and "1.4 ms" in text and "Multi-AZ commit p50" in text
    assert "a read right after a write missed it 3 times in 20" in text
    assert "lazy-ttl p50" in text and "91.3 %" in text and "16 database queries" in text


def test_report_page__figures_not_run_say_how__stale_ones_are_named(lab):
    text = report_of(lab, figs={}, stale=("drill",))
    assert "Not run yet: <code>awslab drill --report</code>" in text
    assert "Not run yet: <code>awslab demo caching --report</code>" in text
    assert "Left out: the drill figures of an earlier stack of this name" in text


def test_figures__saved_then_loaded_only_on_the_vpc_they_were_measured_on(tmp_path, monkeypatch):
    monkeypatch.setenv("AWSLAB_HOME", str(tmp_path))
    found = {"network.vpc": Found("network.vpc", "vpc", "vpc-1", "available")}
    figures.save("week6", "drill", DRILL["result"], found)
    kept, stale = figures.load("week6", found)
    assert kept["drill"]["result"] == DRILL["result"] and kept["drill"]["vpc"] == "vpc-1" and stale == []
    rebuilt = {"network.vpc": Found("network.vpc", "vpc", "vpc-2", "available")}
    assert figures.load("week6", rebuilt) == ({}, ["drill"])
    assert figures.load("other", found) == ({}, [])


def test_charts__bars_and_an_empty_timeline__text_for_every_figure():
    svg = ET.fromstring(charts.bars("c1", "Lag", [("p50", 0.6, "a"), ("p95", 1.4, "a")], "ms", "a note"))
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "0.6 ms" in texts and "1.4 ms" in texts and "a note" in texts
    assert "p50: 0.6 ms; p95: 1.4 ms" in svg.find("{http://www.w3.org/2000/svg}desc").text
    empty = ET.fromstring(charts.timeline("c2", {"acked": []}, "DB writes"))
    assert "no writes were recorded" in "".join(empty.itertext())


# --- in a real browser ---------------------------------------------------------------------------

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--dump-dom", "--window-size=1280,1600")


def open_in_chromium(chromium: str, page_path: Path, tmp: Path) -> tuple[str, list[str], bytes]:
    """One browser start: the page's DOM after load, its console lines, and its screenshot (PNG)."""
    shot = tmp / f"{page_path.stem}.png"
    proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", f"--screenshot={shot}",
                           page_path.as_uri()], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console, shot.read_bytes()


def png_not_blank(png: bytes) -> bool:
    """A blank page's image data, once inflated, is a few byte values (filtered rows of one colour)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data, i = b"", 8
    while i < len(png):
        length, kind = int.from_bytes(png[i:i + 4], "big"), png[i + 4:i + 8]
        if kind == b"IDAT":
            data += png[i + 8:i + 8 + length]
        i += 12 + length
    raw = zlib.decompress(data)
    distinct = len(set(raw[::7]))
    ink = sum(1 for b in raw[::97] if b not in (0, 255)) / len(raw[::97])
    return distinct > 40 and ink > 0.01


def _az_of(svg: ET.Element, name: str) -> str:
    """The AZ column a node's name is drawn in: the AZ label nearest at its left."""
    ns = "{http://www.w3.org/2000/svg}"
    texts = [(float(t.get("x")), "".join(t.itertext())) for t in svg.iter(f"{ns}text") if t.get("x")]
    azs = sorted((x, s) for x, s in texts if re.fullmatch(r"us-east-1[a-z]", s))
    x = next(x for x, s in texts if s == name)
    return [s for ax, s in azs if ax <= x + 1][-1]


def test_pages_in_chromium__report_and_grade_sheet__content_no_console_messages_not_blank(lab, tmp_path):
    chromium = system_binary("chromium", "chromium-browser")
    report = tmp_path / "report.html"
    report.write_text(report_of(lab, db_rule=False))
    done, sheet = graded_class()
    grades = tmp_path / "grades.html"
    grades.write_text(grade_page_of(done, sheet))

    dom, console, png = open_in_chromium(chromium, report, tmp_path)
    assert console == []
    assert png_not_blank(png)
    diagram = next(ET.fromstring(s) for s in re.findall(r"<svg .*?</svg>", dom, flags=re.S) if "week6-db standby" in s)
    text = " ".join(diagram.itertext())
    for what in ("us-east-1a", "us-east-1b", "week6-db-replica-1", "week6-cache-001", "week6-cache-002",
                 "week6-app · sg-app", "week6-db · sg-db", "week6-cache · sg-cache", "tcp/6379: allowed"):
        assert what in text, what
    assert _az_of(diagram, "week6-db") == "us-east-1a" and _az_of(diagram, "week6-db standby") == "us-east-1b"
    assert _az_of(diagram, "week6-cache-002") == "us-east-1b"
    blocked = [g for g in diagram.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "path bad"]
    assert blocked and all("tcp/5432: BLOCKED" in "".join(g.itertext()) for g in blocked)
    assert all(p.get("stroke-dasharray") for g in blocked for p in g.iter("{http://www.w3.org/2000/svg}path"))
    assert "downtime 0.32 s" in dom and "Failover drill" in dom

    dom, console, png = open_in_chromium(chromium, grades, tmp_path)
    assert console == [] and png_not_blank(png)
    red = re.findall(r'<tr class="row-fail" id="row-student_(s\d+)">(.*?)</tr>', dom, flags=re.S)
    assert sorted(s for s, _ in red) == sorted(BROKEN)
    for student, row in red:
        assert BROKEN[student][0] in row and BROKEN[student][2] in row
