"""The local AWS's state on disk: every moto backend in use (resources, ids, tags, secrets,
snapshots), saved after each change and loaded by the next server of the same home, so a stack
survives `awslab local stop`, a crash of the server and a reboot of the machine.

Saved as one pickle of all the backends (references between them kept; AWS's managed policies by
ARN, taken from the new server's IAM; Amazon's AMIs not at all, made again at load), with a header naming the versions it was made by, written atomically (rename) and owner-only to ``<local dir>/state.pickle``
(it holds the lab's secrets, as Secrets Manager does). A change is saved by a background thread
once requests pause for ``SAVE_DELAY_S`` (at most ``SAVE_AT_MOST_S`` after it), so a SIGKILL loses
at most that last second; a clean stop saves synchronously. Requests and the save share one lock, so a save never sees a
backend half-changed. The engines' data stays in their own directories (local/engines/) and is
reattached by local/backing/. awslab's own notes on moto's objects (local/side.py) are saved with
them; a state saved before those notes (one ``_awslab_<field>`` attribute each) loads as it is, its
attributes taken into the notes the first time each object is read (same FORMAT).

A save that fails (a resource pickle refuses, a full disk) leaves the last good state as it was,
logs the cause with where in the state it failed, and writes ``state.unsaved.json`` (since when,
why): every command warns from it, and `local stop` exits 1 saying what is lost. The next good save
removes it.

A state made by another moto or awslab version is not loaded (its pickled classes may not match):
it is set aside as ``state.pickle.<version>`` and the server starts empty, saying so in its log.
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import hashlib
import io
import logging
import os
import pickle
import re
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from awslab.home.state import write_durably
from awslab.local import latency

log = logging.getLogger("awslab.local.persistence")

STATE_FILE = "state.pickle"
# Present while the state cannot be saved (since when, why, when the kept state was saved): what
# every command and `local stop` read to say so. Removed by the next good save.
UNSAVED_FILE = "state.unsaved.json"
FORMAT = 2   # 2: AWS managed policies saved by reference. (Amazon's AMIs left out changed nothing a
# state of this format loads: one that holds them, saved before, loads with them as it is.)
SAVE_DELAY_S = 0.2
SAVE_AT_MOST_S = 1.0
# Operations that only read: anything else marks the state changed.
_READ_ONLY = re.compile(r"^(Describe|List|Get|Search|Lookup|BatchGet|Check|Validate|Test(?!Failover))")
_ACTION = re.compile(rb"(?:^|&)Action=([A-Za-z0-9]+)")

# One lock for "a request is changing the backends" and "the backends are being saved".
LOCK = threading.RLock()
_store: Store | None = None   # the server's, once started


# Work a saved state had in flight, begun again once it is loaded (and the engines are back): each
# resumer gets nothing and returns a line for the server's log, or None when it had nothing to do.
resumers: list = []


def resume_background() -> list[str]:
    said = []
    for resume in resumers:
        try:
            line = resume()
        except Exception:  # noqa: BLE001 - logged; the server still serves
            log.exception("resuming %s failed", getattr(resume, "__name__", resume))
            continue
        if line:
            said.append(line)
    return said


def changed_in_background() -> None:
    """A change made outside a request (a StackSet operation's worker): saved as a request's is."""
    if _store is not None:
        _store.changed()


def _versions() -> dict[str, str]:
    import moto

    from awslab import __version__

    return {"format": str(FORMAT), "moto": moto.__version__, "awslab": __version__,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}"}


def _rsa_reducer() -> None:
    """moto's KMS (and RDS through it) keeps RSA keys, which pickle cannot: carry them as PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    def reduce(k):
        return (_load_pem, (k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()),))

    copyreg.pickle(type(key), reduce)


def _load_pem(pem: bytes):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, None)


def _portable(factory):
    """A picklable stand-in for a defaultdict's lambda factory (moto writes ``defaultdict(lambda:
    defaultdict(dict))``): a partial of what the lambda makes, judged from one value it makes."""
    sample = factory()
    if type(sample) is defaultdict:
        inner = sample.default_factory
        return functools.partial(defaultdict, inner if inner is None or _plain(inner) else _portable(inner))
    if type(sample) in (dict, list, set) and not sample:
        return type(sample)
    raise pickle.PicklingError(f"cannot save a defaultdict made by {factory!r}")


def _plain(factory) -> bool:
    return "<locals>" not in getattr(factory, "__qualname__", "") and getattr(factory, "__name__", "") != "<lambda>"


def _defaultdict(cls, factory, items, attrs):
    out = defaultdict.__new__(cls)
    defaultdict.__init__(out, factory)
    out.update(items)
    if attrs:
        out.__dict__.update(attrs)
    return out


def _subclasses(cls: type) -> list[type]:
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


def _reduce_managed_policy(policy):
    # AWS's ~1,300 managed policies are 80% of the state and the same in every server: saved by
    # ARN (with how many attach them), taken from the new server's IAM at load.
    return _managed_policy, (policy.account_id, policy.arn, policy.attachment_count)


def _managed_policy(account: str, arn: str, attachments: int):
    from moto.iam.models import iam_backends

    policy = iam_backends[account]["global"].managed_policies.get(arn)
    if policy is None:
        raise pickle.UnpicklingError(f"AWS managed policy {arn} is not in this moto")
    policy.attachment_count = attachments
    return policy


def _reduce_defaultdict(obj):
    # defaultdict pickles as cls(factory): wrong for a lambda factory, and for a subclass whose
    # __init__ takes other arguments (moto's ParameterDict).
    factory = obj.default_factory
    if type(obj) is defaultdict and _plain(factory):
        return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    if factory is not None and not _plain(factory):
        factory = _portable(factory)
    return _defaultdict, (type(obj), factory, dict(obj), dict(getattr(obj, "__dict__", {})))


# An EC2 backend's Amazon AMIs (moto makes ~1,400 in each region, each with its snapshot): the same
# in every server and read-only to an account, as on AWS (no account can tag, share or deregister
# Amazon's images). Three quarters of a lab's saved state and of every save's time, so they are not
# saved: the next server makes them again, with the snapshot ids they had.
_AMAZON_SNAPSHOTS = "_awslab_amazon_ami_snapshots"
_completing = threading.local()


def _amazons(ami) -> bool:
    return getattr(ami, "owner_alias", None) == "amazon" and getattr(ami, "instance_id", None) is None


def _reduce_ec2_backend(backend):
    state = dict(backend.__dict__)
    amazon = {ami_id: ami for ami_id, ami in state.get("amis", {}).items() if _amazons(ami)}
    if not amazon:
        return copyreg.__newobj__, (type(backend),), state
    snapshots = {ami.ebs_snapshot.id: ami_id for ami_id, ami in amazon.items() if getattr(ami, "ebs_snapshot", None)}
    state["amis"] = {ami_id: ami for ami_id, ami in state["amis"].items() if ami_id not in amazon}
    state["snapshots"] = {sid: snap for sid, snap in state.get("snapshots", {}).items() if sid not in snapshots}
    state[_AMAZON_SNAPSHOTS] = {ami_id: sid for sid, ami_id in snapshots.items()}
    return copyreg.__newobj__, (type(backend),), state, None, None, _set_ec2_state


def _set_ec2_state(backend, state: dict) -> None:
    snapshots = state.pop(_AMAZON_SNAPSHOTS, None)
    backend.__dict__.update(state)
    if snapshots is not None:
        _completing.pending.append((backend, snapshots))


def _amazon_amis_again(backend, snapshots: dict[str, str]) -> None:
    """The Amazon AMIs a saved EC2 backend left out, made as moto makes them, listed before the
    account's own as moto lists them, each AMI's snapshot under the id it had."""
    own, backend.amis = backend.amis, {}
    backend._load_amis()
    for ami_id, ami in backend.amis.items():
        snap, saved = getattr(ami, "ebs_snapshot", None), snapshots.get(ami_id)
        if snap is not None and saved and saved != snap.id:
            backend.snapshots.pop(snap.id, None)
            snap.id = saved
            backend.snapshots[saved] = snap
    backend.amis.update(own)


@functools.cache
def _ec2_backend():
    from moto.ec2.models import EC2Backend

    return EC2Backend


class _Pickler(pickle.Pickler):
    """The state's pickler: what needs saving otherwise is named in its dispatch table, by class,
    which the C pickler consults itself (a ``persistent_id`` or ``reducer_override`` method would be
    a Python call for every object saved: a third of the local AWS's CPU while tests ran)."""

    def __init__(self, file, protocol: int) -> None:
        super().__init__(file, protocol)
        table = copyreg.dispatch_table.copy()   # the process's reducers too (RSA keys)
        for cls in _subclasses(_aws_managed_policy()):
            table[cls] = _reduce_managed_policy
        for cls in _subclasses(defaultdict):   # moto's modules are imported by now: their subclasses are known
            table[cls] = _reduce_defaultdict
        for cls in _subclasses(_ec2_backend()):
            table[cls] = _reduce_ec2_backend
        self.dispatch_table = table


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        # States saved before the dispatch table referred to managed policies by persistent id.
        kind, account, arn, attachments = pid
        if kind != "aws-managed-policy":
            raise pickle.UnpicklingError(f"unknown reference {kind!r}")
        return _managed_policy(account, arn, attachments)


@functools.cache
def _aws_managed_policy():
    from moto.iam.models import AWSManagedPolicy

    return AWSManagedPolicy


def dumps(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    except (TypeError, AttributeError, pickle.PicklingError) as exc:
        where = unpicklable_path(state)
        raise pickle.PicklingError(f"{exc}{f' at {where}' if where else ''}") from exc
    return buf.getvalue()


def unpicklable_path(root: Any, limit: int = 200_000) -> str | None:
    """Where in ``root`` the first object pickle refuses sits, as a path (``['backends'][...].attr``):
    what a failed save names, so the log says which resource could not be saved."""
    seen: set[int] = set()
    todo: list[tuple[Any, str]] = [(root, "")]
    while todo and len(seen) < limit:
        obj, path = todo.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            todo += [(v, f"{path}[{k!r}]") for k, v in obj.items()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo += [(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        elif isinstance(obj, type) or callable(obj) and not hasattr(obj, "__dict__"):
            continue
        else:
            state = getattr(obj, "__dict__", None)
            if state is None and not hasattr(obj, "__slots__"):
                try:
                    pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:  # noqa: BLE001 - this is the one
                    return f"{path} ({type(obj).__name__})"
                continue
            if state is not None:
                todo += [(v, f"{path}.{k}") for k, v in state.items()]
            for slot in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, slot):
                    todo.append((getattr(obj, slot), f"{path}.{slot}"))
    return None


def loads(data: bytes) -> dict[str, Any]:
    _completing.pending = []
    try:
        state = _Unpickler(io.BytesIO(data)).load()
        for backend, snapshots in _completing.pending:   # whole now: each can make its AMIs
            _amazon_amis_again(backend, snapshots)
    finally:
        _completing.pending = []
    return state


def is_change(operation: str) -> bool:
    return not _READ_ONLY.match(operation)


def operation_of(environ: dict, body: bytes) -> str:
    """The AWS operation a request names (X-Amz-Target for JSON services, Action for query ones)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    m = _ACTION.search(body) or _ACTION.search((environ.get("QUERY_STRING") or "").encode())
    return m.group(1).decode() if m else "?"


def _backend_dicts() -> list:
    from moto.core.base_backend import BackendDict

    return list(BackendDict._instances)


def snapshot() -> dict[str, Any]:
    """Every backend in use, by (models module, service), with the timeline's clock."""
    backends = {}
    for bd in _backend_dicts():
        regions = {account: dict(asb) for account, asb in bd.items()}
        if not any(regions.values()):
            continue
        module = next((type(b).__module__ for r in regions.values() for b in r.values()), None)
        backends[(module, bd.service_name)] = regions
    return {"versions": _versions(), "clock": (latency.now(), time.time()),
            "latency": latency.current(), "backends": backends}


def _find_backend_dict(module: str, service: str):
    import importlib

    from moto.core.base_backend import BackendDict

    mod = importlib.import_module(module)
    for value in vars(mod).values():
        if isinstance(value, BackendDict) and value.service_name == service:
            return value
    raise LookupError(f"no backends for {service} in {module}")


def restore(state: dict[str, Any]) -> int:
    """Put the saved backends in place of moto's (before any request); the number of services."""
    for (module, service), regions in state["backends"].items():
        bd = _find_backend_dict(module, service)
        for account, by_region in regions.items():
            asb = bd[account]
            for region, backend in by_region.items():
                dict.__setitem__(asb, region, backend)
    latency.resume_clock(*state["clock"])
    latency.set_current(state["latency"])
    return len(state["backends"])


class Store:
    """Saves the state when it changed, from a background thread; loads it at start."""

    def __init__(self, local_dir: Path) -> None:
        self.path = local_dir / STATE_FILE
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._digest = ""
        self._thread: threading.Thread | None = None
        self.loaded = False
        self._checked = False
        self.failing_since: float | None = None
        _rsa_reducer()

    def load(self) -> str:
        """Load the saved state, if any; a line saying what was loaded (for the server's log)."""
        # A failure a previous server reported is history: this server starts from what was kept.
        self.path.with_name(UNSAVED_FILE).unlink(missing_ok=True)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return "no saved state: starting empty"
        try:
            state = loads(data)
            if state.get("versions") != _versions():
                raise ValueError(f"made by {state.get('versions')}, this is {_versions()}")
            count = restore(state)
        except Exception as exc:  # noqa: BLE001 - an unusable state is set aside, never half-loaded
            aside = self.path.with_name(f"{STATE_FILE}.{int(time.time())}")
            os.replace(self.path, aside)
            log.warning("the saved state could not be loaded (%s); set aside as %s, starting empty", exc, aside)
            return f"saved state set aside as {aside.name} ({exc}); starting empty"
        self._digest = hashlib.sha256(data).hexdigest()
        self.loaded = True
        return f"loaded the saved state: {count} services, {len(data) // 1024} KiB"

    def changed(self) -> None:
        self._changed.set()

    def start(self) -> None:
        global _store
        _store = self
        self._thread = threading.Thread(target=self._run, name="state-saver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._changed.wait(timeout=1.0) or self._stop.is_set():
                continue
            # A burst of requests lands in one save: after SAVE_DELAY_S of quiet, or SAVE_AT_MOST_S
            # after its first change, whichever comes first (the most a SIGKILL can lose).
            first = time.monotonic()
            self._changed.clear()
            while (time.monotonic() - first < SAVE_AT_MOST_S and self._changed.wait(timeout=SAVE_DELAY_S)
                   and not self._stop.is_set()):
                self._changed.clear()
            self.try_save()

    def try_save(self) -> bool:
        """``save``, a failure logged and recorded in UNSAVED_FILE (the next change tries again);
        True if the state on disk is the current one."""
        try:
            self.save()
        except Exception as exc:  # noqa: BLE001 - recorded, said by every command, retried
            log.exception("saving the local AWS's state failed")
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = time.time()
        try:
            saved_at = self.path.stat().st_mtime
        except OSError:
            saved_at = None
        from awslab.home.state import write_json_atomic

        cause = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            write_json_atomic(self.path.with_name(UNSAVED_FILE),
                              {"since": self.failing_since, "cause": cause[:400], "saved_at": saved_at})

    def _recovered(self) -> None:
        if self.failing_since is not None:
            self.failing_since = None
            self.path.with_name(UNSAVED_FILE).unlink(missing_ok=True)
            log.info("the local AWS's state is saved again")

    def save(self) -> bool:
        """Write the state now if it differs from the last one written; True if written. Raises
        when it cannot: what was saved before stays as it was, never a part of a state."""
        with LOCK:
            data = dumps(snapshot())
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            self._recovered()
            return False
        write_durably(self.path, data, f".{STATE_FILE}.")
        self._digest = digest
        self._recovered()
        if not self._checked:   # once per server: what was written loads, or the log says why now
            self._checked = True
            loads(data)
        return True

    def close(self) -> bool:
        """Stop the saver and write the last state; False (recorded in UNSAVED_FILE) if it could not."""
        self._stop.set()
        self._changed.set()   # wakes the saver now, not after its wait's second
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.try_save()
