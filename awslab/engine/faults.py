"""Seeded fault injection at the botocore layer, for tests and benchmarks against a local AWS.

``AWSLAB_FAULTS="rate=0.2,seed=7"`` makes every client awslab builds fail about ``rate`` of its
requests with one of the faults real AWS produces:

- ``throttle``: 400 ``Throttling`` / ``RequestLimitExceeded`` / ``ThrottlingException`` (not applied);
- ``500`` / ``503``: ``InternalError`` / ``ServiceUnavailable``, after the server *did* act on
  the request, as AWS may;
- ``reset``: the connection drops before the request is sent (not applied);
- ``lost``: the server acts on the request, then the response is lost (a connection reset or a
  read timeout): a retried create must not make a second resource;
- ``not-yet``: a request naming a resource created moments ago answers "not found" (EC2's
  eventual consistency), once per resource.

Decisions are drawn from ``random.Random`` seeded by (seed, operation, how many times that
operation has been called), so a seed gives the same faults for the same sequence of calls.
The injector refuses ``--target aws``: it is for the local AWS or another emulator.
Counts of what was injected are kept in ``INJECTED`` (and written to ``AWSLAB_FAULTS_LOG`` if set)
so tests can check that faults really happened.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from awslab.errors import UsageError

ENV = "AWSLAB_FAULTS"
KINDS = ("throttle", "500", "503", "reset", "lost", "not-yet")
INJECTED: Counter = Counter()
_lock = threading.Lock()

# EC2 ids a just-created resource gets, and the code AWS answers while it is not yet visible.
_NOT_YET = {"vpc": "InvalidVpcID.NotFound", "subnet": "InvalidSubnetID.NotFound", "sg": "InvalidGroup.NotFound",
            "igw": "InvalidInternetGatewayID.NotFound", "rtb": "InvalidRouteTableID.NotFound",
            "i": "InvalidInstanceID.NotFound"}
_ID = re.compile(r"\b(vpc|subnet|sg|igw|rtb|i)-[0-9a-f]{8,17}\b")
_THROTTLE_CODE = {"ec2": "RequestLimitExceeded", "json": "ThrottlingException", "query": "Throttling"}


@dataclass
class Injector:
    rate: float
    seed: int
    kinds: tuple[str, ...] = KINDS
    _calls: Counter = field(default_factory=Counter)
    _fresh: set[str] = field(default_factory=set)   # ids created and not yet answered "not found"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, client) -> None:
        protocol = client.meta.service_model.resolved_protocol
        service = client.meta.service_model.service_name
        events = client.meta.events
        service_id = client.meta.service_model.service_id.hyphenize()
        events.register_first(f"before-send.{service_id}",
                              lambda request, **kw: self._before_send(protocol, request, **kw))
        if service == "ec2":
            events.register(f"after-call.{service_id}", self._after_call)

    def _draw(self, operation: str) -> random.Random:
        with self._lock:
            self._calls[operation] += 1
            n = self._calls[operation]
        return random.Random(f"{self.seed}:{operation}:{n}")

    def _before_send(self, protocol: str, request, **kwargs):
        operation = _operation(kwargs)
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        rng = self._draw(operation)
        if rng.random() >= self.rate:
            return None   # botocore sends it as usual
        kind = rng.choice(self.kinds)
        if kind == "not-yet":
            stale = self._stale_id(body) if protocol == "ec2" else None
            if stale is None:
                kind = rng.choice([k for k in self.kinds if k != "not-yet"] or ["throttle"])
            else:
                _count(kind)
                prefix = stale.split("-")[0]
                return _error(400, protocol, _NOT_YET[prefix], f"The ID '{stale}' does not exist")
        _count(kind)
        if kind == "throttle":
            code = _THROTTLE_CODE["ec2" if protocol == "ec2" else "json" if protocol.startswith("json") else "query"]
            return _error(400, protocol, code, "Rate exceeded")
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        # The rest happen after the server has acted on the request.
        acted = _send(request)
        if operation.startswith(("Create", "Run")) and protocol == "ec2" and acted.status_code < 300:
            self._remember(acted.content.decode(errors="replace"))
        if kind == "500":
            return _error(500, protocol, "InternalError", "We encountered an internal error. Please try again.")
        if kind == "503":
            return _error(503, protocol, "ServiceUnavailable", "Service is unavailable. Please try again.")
        if rng.random() < 0.5:
            raise ConnectionClosedError(endpoint_url=request.url)
        raise ReadTimeoutError(endpoint_url=request.url)

    def _after_call(self, parsed, model, **_) -> None:
        if model.name.startswith(("Create", "Run")):
            self._remember(json.dumps(parsed, default=str))

    def _remember(self, text: str) -> None:
        with self._lock:
            self._fresh |= {m.group(0) for m in _ID.finditer(text)}

    def _stale_id(self, body: str) -> str | None:
        """A fresh id this request names; forgotten once answered "not found"."""
        # Only ids passed as parameters: AWS answers a filter naming an unknown id with an empty list.
        named = [value for key, value in parse_qsl(body) if not key.startswith("Filter")]
        with self._lock:
            for value in named:
                if value in self._fresh:
                    self._fresh.discard(value)
                    return value
        return None


def _operation(kwargs) -> str:
    """The operation's name, from the event name ('before-send.ec2.CreateVpc')."""
    event = kwargs.get("event_name", "")
    parts = event.split(".")
    return parts[2] if len(parts) > 2 else event


_http = threading.local()


def _send(request) -> AWSResponse:
    """Send the request for real, so that the server acts on it before the fault."""
    from botocore.httpsession import URLLib3Session

    if not hasattr(_http, "session"):
        _http.session = URLLib3Session(timeout=60)
    return _http.session.send(request)


def _error(status: int, protocol: str, code: str, message: str) -> AWSResponse:
    """An error response in the service's own wire format."""
    if protocol == "ec2":
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>awslab-fault</RequestID></Response>")
        headers = {"Content-Type": "text/xml"}
    elif protocol.startswith("json") or protocol == "rest-json":
        body = json.dumps({"__type": code, "message": message})
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}
    else:
        body = (f"<ErrorResponse><Error><Type>{'Receiver' if status >= 500 else 'Sender'}</Type><Code>{code}</Code>"
                f"<Message>{message}</Message></Error><RequestId>awslab-fault</RequestId></ErrorResponse>")
        headers = {"Content-Type": "text/xml"}
    return AWSResponse(url="", status_code=status, headers=headers, raw=_Raw(body.encode()))


class _Raw:
    """Just enough of a urllib3 response for botocore to read a body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_a, **_k):
        yield self._data

    def read(self, *_a, **_k) -> bytes:
        data, self._data = self._data, b""
        return data


def _count(kind: str) -> None:
    with _lock:
        INJECTED[kind] += 1
    path = os.environ.get(f"{ENV}_LOG")
    if path:
        with _lock, open(path, "a", encoding="utf-8") as f:
            f.write(kind + "\n")


_active: dict[str, Injector] = {}


def from_env(target: str) -> Injector | None:
    """The injector ``AWSLAB_FAULTS`` asks for, if any: one per process, shared by every client."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    with _lock:
        if spec in _active and target != "aws":
            return _active[spec]
    if target == "aws":
        raise UsageError(f"{ENV} is set but injects faults only into a local AWS or emulator", f"unset {ENV}")
    try:
        fields = dict(part.split("=", 1) for part in spec.split(","))
        kinds = tuple(fields.pop("kinds").split("+")) if "kinds" in fields else KINDS
        injector = Injector(rate=float(fields.pop("rate")), seed=int(fields.pop("seed", "0")), kinds=kinds)
    except (ValueError, KeyError):
        raise UsageError(f"{ENV}='{spec}' is not understood", "e.g. rate=0.2,seed=7[,kinds=throttle+lost]") from None
    if fields or not 0 <= injector.rate <= 1 or set(injector.kinds) - set(KINDS):
        raise UsageError(f"{ENV}='{spec}' is not understood", f"rate in 0..1, kinds among {'+'.join(KINDS)}")
    with _lock:
        return _active.setdefault(spec, injector)
