"""`awslab class`: one stack per student, built, graded and removed together.

A class is the stacks tagged ``awslab:class=<class>`` (``spec/tags.py``), named ``<class>-<student>``;
everything about it is found from the tags, so any machine can grade or remove it. Each student's
`up`, `verify` or `down` runs as an awslab process of its own, at most ``--concurrency`` at a time:
one student's failure is that student's row, never the others' stop, and a rerun converges.
"""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from awslab import ui
from awslab.commands import launcher
from awslab.commands._common import child_args, child_command, confirm_real_account, lab_cost
from awslab.commands.stacks import check_owner, expiry_from, list_stacks, time_left
from awslab.engine.context import Context
from awslab.errors import EXIT_FAILED, EXIT_OK, Interrupted, UsageError
from awslab.spec import pricing
from awslab.spec.lab import Lab
from awslab.spec.tags import STACK_NAME_RULE, TAG_CLASS, TAG_OWNER, valid_stack_name

CHILD_TIMEOUT_S = 3 * 3600
GROUPS = ("inventory", "spec", "network", "path", "security", "live")


@dataclass(frozen=True)
class Student:
    name: str
    stack: str
    owner: str | None = None
    expires: str | None = None   # RFC 3339, "" none, None: the class's own
    region: str | None = None     # a StackSet's student: the instance's region and account's role
    role_arn: str | None = None


def check_class_name(name: str) -> str:
    if not valid_stack_name(name) or len(name) > 20:
        raise UsageError(f"invalid class name '{name}'", f"use 1-20 characters of a stack name ({STACK_NAME_RULE})")
    return name


def students_from(class_name: str, count: int | None, roster: str | None) -> list[Student]:
    """The class's students, from ``--count N`` (s01, s02, ...) or a roster CSV with a ``student``
    column and, optionally, ``owner`` and ``ttl`` or ``expires_at``. Every name is checked before
    anything is made."""
    if (count is None) == (roster is None):
        raise UsageError("give --count N or --roster FILE (one of them)", "e.g. --count 10, or --roster students.csv")
    rows: list[dict[str, str]]
    if count is not None:
        if not 1 <= count <= 200:
            raise UsageError(f"--count {count} is out of range", "1 to 200 students")
        rows = [{"student": f"s{i:02d}"} for i in range(1, count + 1)]
    else:
        try:
            text = Path(roster).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read the roster {roster}: {exc.strerror}", "a CSV file with a 'student' column") from None
        reader = csv.DictReader(io.StringIO(text))
        if "student" not in (reader.fieldnames or []):
            raise UsageError(f"{roster}: no 'student' column", "the first line names the columns: student,owner,ttl")
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
        if not rows:
            raise UsageError(f"{roster}: no students", "one line per student after the header")
    out: list[Student] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=2):
        name = row["student"].lower()
        where = f"{roster}:{n}: " if roster else ""
        stack = f"{class_name}-{name}"
        if not name or not valid_stack_name(stack):
            raise UsageError(f"{where}student '{row['student']}' does not make a valid stack name ('{stack}')",
                             f"students' names are lowercase letters, digits and hyphens; the stack name is "
                             f"<class>-<student>: {STACK_NAME_RULE}")
        if stack in seen:
            raise UsageError(f"{where}student '{name}' is listed twice", "one line per student")
        seen.add(stack)
        owner = row.get("owner") or None
        check_owner(owner)
        expires = expiry_from(row.get("ttl") or None, row.get("expires_at") or None) if (
            row.get("ttl") or row.get("expires_at")) else None
        out.append(Student(name, stack, owner, expires))
    return out


def members(ctx: Context, class_name: str) -> list[Student]:
    """The class's students as the tags have them (any machine): the stacks whose VPC says so."""
    from awslab.aws import network
    from awslab.commands._common import new_run

    prefix = f"{class_name}-"
    records = network.stack_records(new_run(ctx, "awslab"))
    return [Student(name.removeprefix(prefix), name, record.get(TAG_OWNER) or None)
            for name, record in sorted(records.items()) if record.get(TAG_CLASS) == class_name]


# --- running one command per student --------------------------------------------------------------

@dataclass
class Done:
    student: Student
    code: int
    seconds: float
    out: str
    err: str

    @property
    def why(self) -> str:
        lines = [line for line in self.err.strip().splitlines() if line.strip() and not line.startswith("[")]
        return (lines or [f"exit {self.code}"])[-1]


def for_each(ctx: Context, students: list[Student], argv_of, concurrency: int, verb: str,
             progress: ui.Progress) -> list[Done]:
    """Run ``argv_of(student)`` for every student, ``concurrency`` at a time; one line per student.

    On Ctrl-C no new student starts, the running ones are interrupted too (each stops at a step
    boundary, as `up` or `down` alone would) and waited for, and the error says which finished,
    which stopped part-way and which never began."""
    running: dict[str, subprocess.Popen | launcher.Launched] = {}
    lock = threading.Lock()
    stopping = threading.Event()
    # More students than run at once: the later ones are forked from a prepared process (the first
    # ones start while it prepares). A class that all starts at once would only pay for preparing it.
    launch = launcher.Launcher(verb) if launcher.enabled() and len(students) > concurrency else None

    def one(s: Student) -> Done | None:
        if stopping.is_set():
            return None   # never began
        t0 = time.monotonic()
        where = ctx.as_role(s.role_arn, s.region) if s.role_arn or s.region else ctx
        with lock:
            if stopping.is_set():
                return None
            # Its own process group: a terminal's Ctrl-C reaches it only through us, once.
            proc = launch and launch.spawn(child_args(where, *argv_of(s)))
            if proc is None:
                proc = subprocess.Popen(child_command(where, *argv_of(s)), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, start_new_session=True)
            running[s.stack] = proc
        try:
            out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            code, err = EXIT_FAILED, f"timed out after {CHILD_TIMEOUT_S // 60} min"
        finally:
            with lock:
                running.pop(s.stack, None)
        return Done(s, code, time.monotonic() - t0, out, err)

    results: list[Done] = []
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="class")
    futures = [pool.submit(one, s) for s in students]
    try:
        for fut in as_completed(futures):
            d = fut.result()
            results.append(d)
            progress.line(f"{verb} {d.student.name} ({d.student.stack}): {_status(d, verb)} in {d.seconds:.1f}s "
                          f"[{len(results)}/{len(students)}]")
    except KeyboardInterrupt:
        _interrupt(students, verb, results, running, lock, stopping, futures, pool, progress)
    finally:
        if launch is not None:
            launch.close()
    pool.shutdown()
    order = {(s.name, s.stack): i for i, s in enumerate(students)}
    return sorted(results, key=lambda d: order[(d.student.name, d.student.stack)])


def _status(d: Done, verb: str) -> str:
    return "ok" if d.code == 0 else ("checks failed" if verb == "verify" and d.code == 1 else f"FAILED: {d.why}")


def _interrupt(students: list[Student], verb: str, results: list[Done], running: dict,
               lock: threading.Lock, stopping: threading.Event, futures, pool: ThreadPoolExecutor,
               progress: ui.Progress) -> None:
    """Stop the class's command: interrupt the students' running commands, wait for them, then
    raise Interrupted naming who finished, who stopped part-way and who never began."""
    with lock:
        stopping.set()
        for proc in running.values():
            proc.send_signal(signal.SIGINT)
    progress.line(f"interrupted: waiting for the {len(running)} running `{verb}` commands to stop at a safe point")
    for fut in futures:
        try:
            d = fut.result(timeout=CHILD_TIMEOUT_S)
        except KeyboardInterrupt:   # a second Ctrl-C: stop waiting, stop them hard
            with lock:
                for proc in running.values():
                    proc.kill()
            continue
        except Exception:  # noqa: BLE001 - a student's failure is its row; the interrupt is the story
            continue
        if d is not None and d not in results:
            results.append(d)
    pool.shutdown(wait=True)
    done = [d.student.stack for d in results if d.code == 0]
    stopped = [d.student.stack for d in results if d.code != 0]
    began = {d.student.stack for d in results}
    never = [s.stack for s in students if s.stack not in began]
    parts = [f"{len(done)} of {len(students)} stacks finished their `{verb}`"]
    if stopped:
        parts.append(f"{len(stopped)} stopped part-way or failed ({', '.join(stopped)})")
    if never:
        parts.append(f"{len(never)} never began")
    raise Interrupted("interrupted: " + "; ".join(parts),
                      f"`awslab class status` shows what exists; rerun the same `awslab class {verb}` to finish")


def check_concurrency(concurrency: int) -> None:
    if not 1 <= concurrency <= 32:
        raise UsageError(f"--concurrency {concurrency} is out of range", "1 to 32 stacks at a time")


# --- the commands ------------------------------------------------------------------------------------

def class_up(ctx: Context, lab: Lab, class_name: str, students: list[Student], *, lab_file: str | None,
             overrides: list[str], expires: str | None, concurrency: int, output: str, progress: ui.Progress) -> int:
    costs = lab_cost(lab, ctx)
    hourly, complete = pricing.total_hourly(costs)
    confirm_real_account(ctx, f"build {len(students)} stacks of {lab.name} for class {class_name}", [
        f"stacks {students[0].stack} ... {students[-1].stack} ({len(students)})",
        f"estimated cost once up in {ctx.region}: {pricing.say(costs, ctx.region)} each, "
        f"{pricing.format_money(hourly * len(students))}/hour for the class{'' if complete else ' (what is priced)'}, "
        "until `awslab class down`"])

    def argv(s: Student) -> list[str]:
        args = ["up", *([] if lab_file else [lab.name]), "--name", s.stack, "--class", class_name, "--yes",
                "--output", "json"]
        if lab_file:
            args += ["--lab-file", lab_file]
        for o in overrides:
            args += ["--set", o]
        if s.owner:
            args += ["--owner", s.owner]
        when = s.expires if s.expires is not None else expires
        if when is not None:
            args += ["--expires-at", when or "none"]
        return args

    t0 = time.monotonic()
    done = for_each(ctx, students, argv, concurrency, "up", progress)
    failed = [d for d in done if d.code != 0]
    progress.line(f"class {class_name}: {len(done) - len(failed)} of {len(done)} stacks up in "
                  f"{time.monotonic() - t0:.1f}s ({concurrency} at a time)")
    rows = [{"student": d.student.name, "stack": d.student.stack, "owner": d.student.owner,
             "result": "up" if d.code == 0 else "failed", "seconds": round(d.seconds, 1),
             "error": None if d.code == 0 else d.why} for d in done]
    if output == "json":
        ui.emit_json({"class": class_name, "lab": lab.name, "students": rows, "failed": len(failed),
                      "estimated_hourly_usd": round(hourly * (len(done) - len(failed)), 4), "cost_complete": complete})
    else:
        ui.emit(ui.table(["STUDENT", "STACK", "OWNER", "RESULT", "SECONDS"],
                         [[r["student"], r["stack"], r["owner"] or "-",
                           r["result"] if not r["error"] else f"failed: {r['error']}", f"{r['seconds']:.1f}"]
                          for r in rows]))
        ui.emit(f"\nclass {class_name}: {len(done) - len(failed)} of {len(done)} stacks up; "
                f"on real AWS about {pricing.format_money(hourly * len(done))}/hour for the class"
                f"{'' if complete else f' (not priced in {ctx.region}: ' + ', '.join(pricing.not_priced(costs)) + ')'}"
                + (f"; rerun `awslab class up` to retry the {len(failed)} that failed" if failed else ""))
    return EXIT_FAILED if failed else EXIT_OK


def class_status(ctx: Context, class_name: str, output: str) -> int:
    rows, _ = list_stacks(ctx, [ctx.region])
    mine = [r for r in rows if r.klass == class_name]
    if output == "json":
        ui.emit_json({"class": class_name, "stacks": [r.as_json() for r in mine],
                      "estimated_hourly_usd": round(sum(r.hourly for r in mine), 4),
                      "cost_complete": all(r.cost_complete for r in mine)})
        return EXIT_OK
    if not mine:
        ui.emit(f"class {class_name}: no stacks in {ctx.region}")
        return EXIT_OK
    prefix = f"{class_name}-"
    ui.emit(ui.table(["STUDENT", "STACK", "OWNER", "STATE", "RESOURCES", "EXPIRES", "$/HOUR"],
                     [[r.stack.removeprefix(prefix), r.stack, r.owner or "-", r.state, str(r.resources),
                       time_left(r.expires) or "never", r.hourly_text] for r in mine]))
    states = {s: sum(1 for r in mine if r.state == s) for s in sorted({r.state for r in mine})}
    ui.emit(f"\nclass {class_name}: {len(mine)} stacks ({', '.join(f'{n} {s}' for s, n in states.items())}); "
            f"about {pricing.format_money(sum(r.hourly for r in mine))}/hour on AWS now"
            + ("" if all(r.cost_complete for r in mine) else f" (part not priced in {ctx.region})"))
    return EXIT_OK


def verify_results(d: Done) -> list[dict] | None:
    """A student's verify results (``Result.as_dict()``s), None when verify did not run."""
    try:
        results = json.loads(d.out) if d.out.strip() else None
    except ValueError:
        return None
    return results if isinstance(results, list) else None


def grade(done: list[Done]) -> list[dict]:
    """One row per student: PASS/FAIL per check group, totals, and what failed."""
    sheet = []
    for d in done:
        results = verify_results(d)
        row: dict = {"student": d.student.name, "stack": d.student.stack, "owner": d.student.owner}
        if not isinstance(results, list):
            row.update({g: "" for g in GROUPS}, passed=0, failed=0, warned=0, grade="ERROR",
                       failures=[f"verify did not run: {d.why}"])
            sheet.append(row)
            continue
        for g in GROUPS:
            mine = [r for r in results if r["id"].split(".")[0] == g]
            p = sum(1 for r in mine if r["status"] == "PASS")
            f = sum(1 for r in mine if r["status"] == "FAIL")
            row[g] = f"{p}/{f}" if mine else ""
        row["passed"] = sum(1 for r in results if r["status"] == "PASS")
        row["failed"] = sum(1 for r in results if r["status"] == "FAIL")
        row["warned"] = sum(1 for r in results if r["status"] == "WARN")
        row["failures"] = [f"{r['id']}: {r.get('detail') or ''}".strip() for r in results if r["status"] == "FAIL"]
        row["grade"] = "PASS" if not row["failed"] else "FAIL"
        sheet.append(row)
    return sheet


def sheet_csv(sheet: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", "stack", "owner", "grade", *(f"{g} pass/fail" for g in GROUPS), "passed", "failed",
                "warned", "failures"])
    for r in sheet:
        w.writerow([r["student"], r["stack"], r["owner"] or "", r["grade"], *(r[g] for g in GROUPS), r["passed"],
                    r["failed"], r["warned"], " | ".join(r["failures"])])
    return buf.getvalue()


def class_verify(ctx: Context, class_name: str, *, checks: tuple[str, ...], concurrency: int, csv_path: str | None,
                 output: str, progress: ui.Progress, html_path: str | None = None) -> int:
    students = members(ctx, class_name)
    if not students:
        raise UsageError(f"class {class_name} has no stacks in {ctx.region}", f"`awslab class up LAB --class {class_name}` first")
    with GradePage(class_name, html_path, progress) as pages:
        done = for_each(ctx, students, lambda s: ["verify", "--name", s.stack, "--output", "json",
                                                  *[a for c in checks for a in ("--check", c)], *pages.argv(s)],
                        concurrency, "verify", progress)
        sheet = grade(done)
        pages.write(done, sheet)
    return print_sheet(class_name, sheet, csv_path, output, progress)


class GradePage:
    """`class verify --html`: each student's `verify` also draws its stack (``--diagram-to``, from the
    World it gathered anyway: no second discovery), then the page (grade_page.py) is written with
    the sheet. Nothing happens without ``html_path``."""

    def __init__(self, class_name: str, html_path: str | None, progress: ui.Progress) -> None:
        self.class_name, self.html_path, self.progress = class_name, html_path, progress
        self.folder: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> GradePage:
        if self.html_path:
            self.folder = tempfile.TemporaryDirectory(prefix="awslab-grades-")
        return self

    def __exit__(self, *exc) -> None:
        if self.folder is not None:
            self.folder.cleanup()

    def _svg(self, s: Student) -> Path:
        return Path(self.folder.name) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', s.name)}.svg"

    def argv(self, s: Student) -> list[str]:
        return ["--diagram-to", str(self._svg(s))] if self.folder is not None else []

    def write(self, done: list[Done], sheet: list[dict]) -> None:
        if self.folder is None:
            return
        from awslab.commands import grade_page
        from awslab.commands.diagram_model import now_text
        from awslab.commands.pages import write_page

        diagrams = {d.student.name: self._svg(d.student).read_text(encoding="utf-8")
                    for d in done if self._svg(d.student).exists()}
        text = grade_page.page(self.class_name, GROUPS, sheet, {d.student.name: verify_results(d) for d in done},
                               diagrams, now_text())
        write_page(Path(self.html_path), text)
        self.progress.line(f"grade sheet page written to {self.html_path} ({len(text.encode()) / 1024:.0f} KiB)")


def print_sheet(class_name: str, sheet: list[dict], csv_path: str | None, output: str, progress: ui.Progress) -> int:
    """The grade sheet (table or JSON, and the CSV if asked); exit 1 when any student fails."""
    if csv_path:
        Path(csv_path).write_text(sheet_csv(sheet))
        progress.line(f"grade sheet written to {csv_path}")
    if output == "json":
        ui.emit_json({"class": class_name, "groups": list(GROUPS), "students": sheet})
    else:
        ui.emit(ui.table(["STUDENT", "GRADE", *(g.upper() for g in GROUPS), "PASS", "FAIL", "WHAT FAILED"],
                         [[r["student"], r["grade"], *(r[g] or "-" for g in GROUPS), str(r["passed"]), str(r["failed"]),
                           "; ".join(f.split(":")[0] for f in r["failures"]) or "-"] for r in sheet]))
        bad = [r for r in sheet if r["grade"] != "PASS"]
        ui.emit(f"\nclass {class_name}: {len(sheet) - len(bad)} of {len(sheet)} pass every check "
                "(GROUP columns: passed/failed checks)")
    return EXIT_FAILED if any(r["grade"] != "PASS" for r in sheet) else EXIT_OK


def class_down(ctx: Context, class_name: str, *, concurrency: int, skip_final_snapshot: bool, delete_snapshots: bool,
               output: str, progress: ui.Progress) -> int:
    students = members(ctx, class_name)
    if not students:
        progress.line(f"class {class_name}: no stacks in {ctx.region}: nothing to remove")
        if output == "json":
            ui.emit_json({"class": class_name, "students": []})
        return EXIT_OK
    confirm_real_account(ctx, f"remove the {len(students)} stacks of class {class_name}",
                         [f"stacks: {', '.join(s.stack for s in students)}",
                          "snapshots: " + ("deleted" if delete_snapshots else
                                           "kept (and a final one of each primary DB)" if not skip_final_snapshot else "kept")])
    flags = (["--delete-snapshots"] if delete_snapshots else []) + (["--skip-final-snapshot"] if skip_final_snapshot else [])
    done = for_each(ctx, students, lambda s: ["down", "--name", s.stack, "--yes", "--output", "json", *flags],
                    concurrency, "down", progress)
    failed = [d for d in done if d.code != 0]
    rows = [{"student": d.student.name, "stack": d.student.stack, "result": "removed" if d.code == 0 else "failed",
             "error": None if d.code == 0 else d.why} for d in done]
    if output == "json":
        ui.emit_json({"class": class_name, "students": rows, "failed": len(failed)})
    else:
        ui.emit(ui.table(["STUDENT", "STACK", "RESULT"],
                         [[r["student"], r["stack"], r["result"] if not r["error"] else f"failed: {r['error']}"]
                          for r in rows]))
        ui.emit(f"\nclass {class_name}: {len(done) - len(failed)} of {len(done)} stacks removed; "
                "`awslab stacks` lists the snapshots they left and what they cost")
    return EXIT_FAILED if failed else EXIT_OK


def remembered_class(class_name: str | None) -> str:
    """``--class``, or the class of the last `class up` on this machine."""
    from awslab.home import state

    name = class_name or state.load_current_context().get("class")
    if not name:
        raise UsageError("no class given and none remembered", "pass --class NAME (what `awslab class up` used)")
    return check_class_name(name)


def remember_class(class_name: str) -> None:
    from awslab.home import state

    state.save_current_context({**state.load_current_context(), "class": class_name})
