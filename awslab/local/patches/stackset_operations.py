"""A StackSet operation as AWS runs it: ``begin`` refuses a second one while one runs (and a reused
``OperationId``); ``start`` hands it to a worker thread that deploys the targets region by region
(``RegionOrder``), at most ``MaxConcurrentCount`` accounts at a time, with ``STRICT_FAILURE_TOLERANCE``
(the default) at most ``FailureToleranceCount + 1`` and one fewer after each failure; once a region's
failures exceed the tolerance its remaining targets and every later region are ``CANCELLED`` and the
operation is ``FAILED``. ``alive`` reports an operation saved ``RUNNING`` by a server that stopped
as ``FAILED``. What one target's work is: ``stackset_targets``; the requests: ``stacksets``.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

from awslab.local.side import note, side

# This process's running operations: id -> "stop" flag. One not here but RUNNING has lost its worker.
_workers: dict[str, threading.Event] = {}
_workers_lock = threading.Lock()


def refusal(code: str, message: str):
    from moto.cloudformation.exceptions import CloudFormationError

    class Refused(CloudFormationError):
        pass

    Refused.code = code
    return Refused(message)


def state_lock():
    from awslab.local import persistence

    return persistence.LOCK


def saved_later() -> None:
    from awslab.local import persistence

    persistence.changed_in_background()


def now():
    from moto.core.utils import utcnow

    return utcnow()


def set_instance_status(inst, status: str, detailed: str, reason: str | None = None, operation: str | None = None) -> None:
    note(inst, status=status, detailed=detailed, reason=reason)
    if operation:
        note(inst, operation=operation)


# --- operations ------------------------------------------------------------------------------------

def begin(stackset, action: str, targets: list[tuple[str, str]], prefs: dict, op_id: str | None) -> dict:
    """A RUNNING operation over ``targets`` (account, region), or the refusal AWS gives."""
    op_id = op_id or str(uuid.uuid4())
    for op in stackset.operations:
        if op["OperationId"] == op_id:
            raise refusal("OperationIdAlreadyExistsException", f"The operation ID {op_id} already exists.")
        if op["Status"] in ("RUNNING", "STOPPING", "QUEUED") and alive(op):
            raise refusal("OperationInProgressException",
                         f"Another Operation on StackSet {stackset.arn} is in progress")
    op = {"OperationId": op_id, "Action": action, "Status": "RUNNING", "CreationTimestamp": now(),
          "Instances": [{a: r} for a, r in targets], "OperationPreferences": prefs,
          "_awslab_results": {f"{a}/{r}": {"Status": "PENDING", "StatusReason": None} for a, r in targets}}
    stackset.operations.append(op)
    return op


def alive(op: dict) -> bool:
    """Is this process still working on ``op``? One saved RUNNING by a server that stopped is not."""
    with _workers_lock:
        if op["OperationId"] in _workers:
            return True
    if op["Status"] in ("RUNNING", "STOPPING", "QUEUED"):
        op["Status"] = "FAILED"
        op["EndTimestamp"] = op.get("EndTimestamp") or now()
        for result in (op.get("_awslab_results") or {}).values():
            if result["Status"] in ("PENDING", "RUNNING"):
                result.update(Status="FAILED", StatusReason="The operation stopped with the local AWS; run it again")
    return False


def _order(targets: list[tuple[str, str]], prefs: dict) -> list[tuple[str, list[str]]]:
    regions: list[str] = []
    for r in [*(prefs.get("RegionOrder") or []), *(r for _, r in targets)]:
        if r not in regions and any(t[1] == r for t in targets):
            regions.append(r)
    return [(r, [a for a, rr in targets if rr == r]) for r in regions]


def _int(prefs: dict, key: str) -> int | None:
    value = prefs.get(key)
    return int(value) if value not in (None, "") else None


def _limits(prefs: dict, accounts: int) -> tuple[int, int, bool]:
    """(max concurrent, failure tolerance, strict) for a region of ``accounts`` targets."""
    tolerance = _int(prefs, "FailureToleranceCount")
    if tolerance is None and _int(prefs, "FailureTolerancePercentage") is not None:
        tolerance = accounts * _int(prefs, "FailureTolerancePercentage") // 100
    concurrent = _int(prefs, "MaxConcurrentCount")
    if concurrent is None and _int(prefs, "MaxConcurrentPercentage") is not None:
        concurrent = max(1, accounts * _int(prefs, "MaxConcurrentPercentage") // 100)
    strict = (prefs.get("ConcurrencyMode") or "STRICT_FAILURE_TOLERANCE") == "STRICT_FAILURE_TOLERANCE"
    return max(1, concurrent or 1), max(0, tolerance or 0), strict


def check_preferences(prefs: dict) -> None:
    for a, b in (("MaxConcurrentCount", "MaxConcurrentPercentage"),
                 ("FailureToleranceCount", "FailureTolerancePercentage")):
        if prefs.get(a) not in (None, "") and prefs.get(b) not in (None, ""):
            raise refusal("ValidationError", f"You must specify either {a} or {b}, but not both.")
    for key in ("MaxConcurrentCount", "FailureToleranceCount"):
        value = _int(prefs, key)
        if value is not None and value < (1 if key.startswith("Max") else 0):
            raise refusal("ValidationError", f"{key} must be at least {1 if key.startswith('Max') else 0}.")
    if prefs.get("ConcurrencyMode") not in (None, "", "STRICT_FAILURE_TOLERANCE", "SOFT_FAILURE_TOLERANCE"):
        raise refusal("ValidationError", f"Invalid ConcurrencyMode: {prefs['ConcurrencyMode']}")


def _cancel(stackset, op: dict, account: str, region: str, why: str) -> None:
    with state_lock():
        op["_awslab_results"][f"{account}/{region}"].update(Status="CANCELLED", StatusReason=why)
        inst = stackset.instances.get_instance(account, region)
        if inst is not None and side(inst).detailed == "PENDING":
            set_instance_status(inst, side(inst).status or "OUTDATED", "CANCELLED", why, op["OperationId"])


def _run(stackset, op: dict, work, stop: threading.Event) -> None:
    """Deploy ``op``'s targets as AWS orders them; ``work(account, region)`` returns None or why it failed."""
    results = op["_awslab_results"]
    regions = _order([(a, r) for i in op["Instances"] for a, r in i.items()], op["OperationPreferences"])
    failed_over = False
    try:
        for region, accounts in regions:
            if failed_over or stop.is_set():
                for a in accounts:
                    _cancel(stackset, op, a, region, "Cancelled since failure tolerance has exceeded" if failed_over
                            else "Operation stopped")
                continue
            concurrent, tolerance, strict = _limits(op["OperationPreferences"], len(accounts))
            pending, failures = list(accounts), 0
            with ThreadPoolExecutor(max_workers=concurrent, thread_name_prefix="stackset") as pool:
                running: dict = {}
                while pending or running:
                    limit = concurrent if not strict else max(1, min(concurrent, tolerance + 1) - failures)
                    while pending and len(running) < limit and failures <= tolerance and not stop.is_set():
                        a = pending.pop(0)
                        with state_lock():
                            results[f"{a}/{region}"].update(Status="RUNNING")
                        running[pool.submit(work, a, region)] = a
                    if not running:
                        break
                    done, _ = futures_wait(list(running), return_when=FIRST_COMPLETED)
                    for fut in done:
                        a = running.pop(fut)
                        try:
                            why = fut.result()
                        except Exception as exc:  # noqa: BLE001 - an account's failure is its result
                            why = str(exc) or type(exc).__name__
                        with state_lock():
                            results[f"{a}/{region}"].update(Status="FAILED" if why else "SUCCEEDED", StatusReason=why)
                        failures += bool(why)
                        saved_later()
            for a in pending:
                _cancel(stackset, op, a, region, "Operation stopped" if stop.is_set()
                        else "Cancelled since failure tolerance has exceeded")
            failed_over = failed_over or failures > tolerance
        with state_lock():
            op["Status"] = "STOPPED" if stop.is_set() else "FAILED" if failed_over else "SUCCEEDED"
            op["EndTimestamp"] = now()
    finally:
        with _workers_lock:
            _workers.pop(op["OperationId"], None)
        saved_later()


def start(stackset, op: dict, work) -> None:
    stop = threading.Event()
    with _workers_lock:
        _workers[op["OperationId"]] = stop
    threading.Thread(target=_run, args=(stackset, op, work, stop), daemon=True,
                     name=f"stackset-{op['OperationId'][:8]}").start()


def stop_event(op_id: str) -> threading.Event | None:
    """The "stop" flag of the running operation ``op_id`` in this process (None: not running here)."""
    with _workers_lock:
        return _workers.get(op_id)
