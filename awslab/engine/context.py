"""Context: resolve the target once, build the boto3 session and clients.

Targets:
- ``local`` (default): the embedded local AWS, started on first use and reused. awslab sends it
  fixed dummy credentials, so a user's real keys are never sent anywhere by the local target.
- ``aws``: the standard credential chain (``--profile``, ``AWS_*`` env vars, config files).
- any ``--endpoint-url``: another emulator, with the standard credential chain.

Clients use botocore's ``standard`` retry mode (throttling and 5xx) and a user agent
``awslab/<version>``. Clients are made lazily, once each, under a lock: boto3 sessions are not
thread-safe, clients are. For the local AWS the contexts of one process share them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Protocol

from awslab import __version__
from awslab.home import sdkdata
from awslab.errors import UsageError

log = logging.getLogger("awslab.aws")
TARGETS = ("local", "aws")
DEFAULT_LOCAL_REGION = "us-east-1"
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")


@dataclass(frozen=True)
class Polling:
    """How often and how long to poll: real AWS is slow and rate-limited, the local one is not."""

    first_delay_s: float
    max_delay_s: float
    progress_every_s: float


AWS_POLLING = Polling(first_delay_s=5.0, max_delay_s=30.0, progress_every_s=30.0)
LOCAL_POLLING = Polling(first_delay_s=0.1, max_delay_s=0.5, progress_every_s=5.0)


class LocalAws(Protocol):
    """The local AWS as the context needs it, handed in by the command line (awslab/local/manager.py
    provides it): the engine room never starts a server itself."""

    def start(self) -> str:
        """The endpoint URL of this home's local AWS, started if it is not running."""

    def credentials(self) -> dict[str, str]:
        """The keys this home's local AWS accepts (boto3 Session keyword arguments)."""

    def saved_credentials(self) -> dict[str, str] | None:
        """Those keys if the home has them already, else None (nothing started or written)."""


@dataclass
class Context:
    target: str
    region: str
    stack: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    yes: bool = False
    role_arn: str | None = None   # --assume-role: act in another account (a student's) through this role
    # --endpoint-url on the local target: another emulator (or another home's local AWS), whose
    # keys come from the usual chain (the environment, a profile), not from this home.
    foreign_endpoint: bool = False
    local: LocalAws | None = field(default=None, repr=False)   # the local target's server, handed in
    _session: object = field(default=None, repr=False)
    _clients: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _making: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_local(self) -> bool:
        return self.target == "local"

    def for_region(self, region: str) -> "Context":
        """The same target, credentials and stack in another region (clients of its own)."""
        return Context(target=self.target, region=region, stack=self.stack, profile=self.profile,
                       endpoint_url=self.endpoint_url, yes=self.yes, role_arn=self.role_arn,
                       foreign_endpoint=self.foreign_endpoint, local=self.local)

    def as_role(self, role_arn: str | None, region: str | None = None) -> "Context":
        """The same target and credentials acting through ``role_arn`` (in ``region``)."""
        return Context(target=self.target, region=region or self.region, stack=self.stack, profile=self.profile,
                       endpoint_url=self.endpoint_url, yes=self.yes, role_arn=role_arn,
                       foreign_endpoint=self.foreign_endpoint, local=self.local)

    @property
    def polling(self) -> Polling:
        # An emulator on this machine (--endpoint-url http://127.0.0.1:...) answers in
        # milliseconds and has no rate limit to respect: poll it as the local AWS.
        return LOCAL_POLLING if self.is_local or _on_loopback(self.endpoint_url) else AWS_POLLING

    def session(self):
        import boto3
        from botocore.exceptions import ProfileNotFound

        with self._lock:
            if self._session is None:
                sdkdata.share_across_sessions()
                try:
                    if self.is_local and self.foreign_endpoint:
                        self._session = self._foreign_session()
                    elif self.is_local:   # the keys the local AWS of this home accepts (local/auth.py)
                        self._session = boto3.Session(region_name=self.region, **self._local().credentials())
                    else:
                        self._session = boto3.Session(profile_name=self.profile, region_name=self.region)
                except ProfileNotFound:
                    raise UsageError(f"AWS profile '{self.profile}' not found", "check ~/.aws/config or --profile") from None
                if self.role_arn:
                    self._session = self._assumed(self._session)
            return self._session

    def _foreign_session(self):
        """For --endpoint-url on the local target: the keys the usual chain gives (the environment,
        AWS_PROFILE), else this home's local AWS's, else the fake ones emulators take."""
        import boto3

        session = boto3.Session(region_name=self.region)
        if session.get_credentials() is not None:
            return session
        keys = (self.local.saved_credentials() if self.local else None) or {
            "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        return boto3.Session(region_name=self.region, **keys)

    def _local(self) -> LocalAws:
        if self.local is None:   # pragma: no cover - resolve() hands it in for the local target
            raise UsageError("no local AWS was handed to this context", "resolve the context with local=")
        return self.local

    def _assumed(self, base):
        """A session on the role's temporary credentials (STS AssumeRole from the base credentials)."""
        import getpass

        import boto3
        from botocore.exceptions import ClientError

        sts = base.client("sts", region_name=self.region, endpoint_url=self.endpoint_url)
        try:
            creds = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=f"awslab-{getpass.getuser()}"[:64],
                                    DurationSeconds=3600)["Credentials"]
        except ClientError as exc:
            raise UsageError(f"cannot assume {self.role_arn}: {exc.response['Error'].get('Message') or exc}",
                             "the role must exist and trust the account you run awslab from") from None
        return boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                             aws_session_token=creds["SessionToken"], region_name=self.region)

    def client(self, service: str, region: str | None = None, *, single_attempt: bool = False):
        """A client for ``service`` (in ``region``, default the context's), made once and reused.

        ``single_attempt`` gives one that never retries by itself, for creates AWS offers no
        idempotency token for: their caller decides whether a retry is safe (run.create_once).
        """
        key = (service, region or self.region, single_attempt)
        with self._lock:
            cached = self._clients.get(key)
        if cached is not None:
            return cached
        # Clients are made one at a time: discovery's areas ask for theirs at once, and making them
        # in parallel (pure Python under the GIL) made each wait for all, EC2's three times over:
        # the first request went out after ~0.45 s instead of ~0.25 s.
        with self._making:
            with self._lock:
                cached = self._clients.get(key)
            if cached is None:
                shared = self._shared_key(key)
                cached = _SHARED_CLIENTS.get(shared) if shared else None
                if cached is None:
                    cached = self._make_client(service, key[1], single_attempt)
                    if shared:
                        _SHARED_CLIENTS.put(shared, cached)
                with self._lock:
                    self._clients[key] = cached
            return cached

    def _shared_key(self, key: tuple) -> tuple | None:
        """What makes a client for this context the same as another context's, for the local AWS
        (or another emulator on this machine) only: the endpoint and the static keys it accepts.
        None where a client must be this context's own: real AWS (its credentials can expire or
        be another role's), fault injection (each command's injector is its own) and --debug (its
        handlers log for this command)."""
        if self.polling is not LOCAL_POLLING or os.environ.get("AWSLAB_FAULTS") or os.environ.get("AWSLAB_DEBUG") == "1":
            return None
        if self.is_local and not self.foreign_endpoint and not self.role_arn:
            # The keys the session would be made with (``session``): known without making one, so
            # a command whose clients are all shared makes no session at all (~6 ms each).
            creds = self._local().credentials()
            access, secret, token = creds["aws_access_key_id"], creds["aws_secret_access_key"], None
        else:
            credentials = self.session().get_credentials()
            if credentials is None:
                return None
            frozen = credentials.get_frozen_credentials()
            access, secret, token = frozen.access_key, frozen.secret_key, frozen.token
        keys = hashlib.sha256(f"{access}\0{secret}\0{token}".encode()).hexdigest()
        return (*key, self.endpoint_url, keys, os.environ.get("AWS_CA_BUNDLE"))

    def _make_client(self, service: str, region: str, single_attempt: bool):
        from botocore.config import Config

        session = self.session()
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1 if single_attempt else 9},
            user_agent_extra=f"awslab/{__version__}",
            connect_timeout=10, read_timeout=60,
            max_pool_connections=32,
        )
        made = session.client(service, region_name=region, endpoint_url=self.endpoint_url, config=config)
        if self.polling is LOCAL_POLLING:
            _local_backoff(made)
        if os.environ.get("AWSLAB_FAULTS"):
            from awslab.engine import faults

            faults.from_env(self.target).install(made)
        if os.environ.get("AWSLAB_DEBUG") == "1":
            made.meta.events.register("before-parameter-build", _log_call)
            made.meta.events.register("after-call", _log_result)
        return made


# botocore backs off 1 s x 2^n (up to 20 s) after a throttle, to respect AWS's rate limits; an
# emulator on this machine has none (only fault injection throttles it), so it waits 20x less.
LOCAL_BACKOFF_SCALE = {"throttling_base_scale": 0.05, "non_throttling_base_scale": 0.01}


def _local_backoff(client) -> None:
    """Scale the client's standard-mode retry backoff for the local AWS (retries, their count and
    which errors are retried stay botocore's)."""
    sid = client.meta.service_model.service_id.hyphenize()
    emitter = getattr(client.meta.events, "_emitter", client.meta.events)   # botocore's EventAliaser wraps it
    entry = getattr(emitter, "_unique_id_handlers", {}).get(f"retry-config-{sid}")
    policy = getattr(getattr((entry or {}).get("handler"), "__self__", None), "_retry_policy", None)
    backoff = getattr(policy, "_retry_backoff", None)
    if backoff is not None and hasattr(backoff, "_DEFAULT_BACKOFF_CONFIG"):
        backoff._DEFAULT_BACKOFF_CONFIG = LOCAL_BACKOFF_SCALE
        backoff._SERVICE_BACKOFF_CONFIG = {}


class _ClientCache:
    """The clients of a process, shared by its contexts (the local target only, see
    ``Context._shared_key``): a command run after another in one process (a class of stacks, the
    tests) reuses the clients and their open connections instead of making them again, a fifth of
    a short command's CPU. Bounded: the least recently used go first."""

    def __init__(self, size: int = 64) -> None:
        from collections import OrderedDict

        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            made = self._items.get(key)
            if made is not None:
                self._items.move_to_end(key)
            return made

    def put(self, key: tuple, client) -> None:
        with self._lock:
            self._items[key] = client
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_SHARED_CLIENTS = _ClientCache()


def _on_loopback(endpoint_url: str | None) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(endpoint_url).hostname if endpoint_url else None
    return host in ("localhost", "::1") or bool(host and host.startswith("127."))


def _log_call(model, params, **_):
    # Parameter names only: values can be secrets (AuthToken, SecretString).
    log.debug("-> %s.%s (%s)", model.service_model.service_name, model.name, ", ".join(sorted(params)))


def _log_result(http_response, parsed, model, **_):
    meta = parsed.get("ResponseMetadata", {}) if isinstance(parsed, dict) else {}
    code = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
    log.debug("<- %s.%s HTTP %s%s", model.service_model.service_name, model.name, getattr(http_response, "status_code", "?"),
              f" {code}" if code else f" request {meta.get('RequestId', '-')}")


def resolve(target: str | None, region: str | None, profile: str | None, endpoint_url: str | None,
            stack: str | None = None, yes: bool = False, remembered: dict | None = None,
            start_local: bool = True, role_arn: str | None = None, local: LocalAws | None = None) -> Context:
    """Flags, then AWSLAB_*/AWS_* env vars, then the remembered context, then defaults.

    Refuses (UsageError, before any request) what cannot work: an unknown target, a profile with
    the local target, no region or no credentials for --target aws, an endpoint URL that is not a
    URL or does not answer. ``local`` is the local AWS (started here unless ``start_local`` is
    false); the command line hands it in.
    """
    remembered = remembered or {}
    target = target or os.environ.get("AWSLAB_TARGET") or remembered.get("target") or "local"
    if target not in TARGETS:
        raise UsageError(f"unknown target '{target}'", f"use one of: {', '.join(TARGETS)}")
    same_target = remembered.get("target") == target
    profile = profile or os.environ.get("AWSLAB_PROFILE") or (remembered.get("profile") if same_target else None)
    endpoint_from = ("--endpoint-url" if endpoint_url else "AWSLAB_ENDPOINT_URL" if os.environ.get("AWSLAB_ENDPOINT_URL")
                     else "the endpoint remembered from the last `awslab up`")
    endpoint_url = endpoint_url or os.environ.get("AWSLAB_ENDPOINT_URL") or (
        remembered.get("endpoint_url") if same_target and target == "aws" else None)
    region = (region or os.environ.get("AWSLAB_REGION") or os.environ.get("AWS_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or (remembered.get("region") if same_target else None))
    if region:
        check_region(region, "region")
    if os.environ.get("AWSLAB_FAULTS"):
        from awslab.engine import faults

        faults.from_env(target)   # refuses --target aws and a spec it cannot read, before anything is sent
    if endpoint_url:
        _check_endpoint_url(endpoint_url, endpoint_from)
    given_endpoint = endpoint_url   # the local AWS awslab manages is checked by its own health probe
    if target == "local":
        if profile:
            raise UsageError("--profile applies to --target aws", "the local AWS needs no credentials")
        region = region or DEFAULT_LOCAL_REGION
        if endpoint_url is None and start_local and local is not None:
            endpoint_url = local.start()
    else:
        if not region:
            region = _region_from_profile(profile)
        if not region:
            raise UsageError("no AWS region set for --target aws", "pass --region, set AWS_REGION, or set a region in your AWS profile")
    role_arn = role_arn or os.environ.get("AWSLAB_ASSUME_ROLE") or None
    if role_arn and not ROLE_ARN.match(role_arn):
        raise UsageError(f"--assume-role {role_arn} is not a role ARN", "e.g. arn:aws:iam::111122223333:role/NAME")
    ctx = Context(target=target, region=region, stack=stack, profile=profile, endpoint_url=endpoint_url, yes=yes,
                  role_arn=role_arn, foreign_endpoint=target == "local" and given_endpoint is not None, local=local)
    if not ctx.is_local and ctx.session().get_credentials() is None:
        # Said here, once, before any request: otherwise every first call fails on its own.
        raise UsageError("no AWS credentials found for --target aws",
                         "run `aws configure` (or `aws sso login`) and pass --profile, or set AWS_PROFILE, "
                         "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if given_endpoint:
        _check_endpoint_answers(given_endpoint, endpoint_from)
    return ctx


def check_region(region: str, flag: str = "--region") -> None:
    """A region AWS has (as the SDK's endpoint data lists them), before any request: an unknown one
    would fail late, as a server error from the local AWS or a host name that does not resolve."""
    import botocore.session

    sdkdata.share_across_sessions()   # the loader is then the clients' own: the data is read once
    partitions = botocore.session.create_loader().load_data("endpoints")["partitions"]
    if not any(region in p.get("regions", {}) for p in partitions):
        aws = next((p for p in partitions if p.get("partition") == "aws"), {"regions": {}})
        raise UsageError(f"{flag} {region}: no such AWS region", f"use one of: {', '.join(sorted(aws['regions']))}")


def _region_from_profile(profile: str | None) -> str | None:
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile).region_name
    except ProfileNotFound:
        raise UsageError(f"AWS profile '{profile}' not found", "check ~/.aws/config or --profile") from None


ENDPOINT_PROBE_TIMEOUT_S = 3.0


def _check_endpoint_url(endpoint_url: str, source: str = "--endpoint-url") -> None:
    """An endpoint URL botocore can use: http(s), a host, a port in range (else botocore fails
    on the first call with a ValueError)."""
    from urllib.parse import urlsplit

    problem = f"{source} '{endpoint_url}' is not a URL"
    hint = "e.g. http://127.0.0.1:5000"
    try:
        parts = urlsplit(endpoint_url)
        port = parts.port   # raises ValueError when out of range or not a number
    except ValueError:
        raise UsageError(problem, hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise UsageError(problem, hint)


def _check_endpoint_answers(endpoint_url: str, source: str = "--endpoint-url") -> None:
    """One quick request to an endpoint URL given to awslab, before anything else.

    Without it an endpoint that refuses connections costs botocore's nine attempts with backoff
    (about ten seconds), and one that accepts connections but never answers a minute per attempt.
    Any HTTP answer (404, 403 ...) will do: this only asks whether something speaks HTTP there.
    """
    import http.client
    import socket
    import ssl
    import urllib.error
    import urllib.request

    url = endpoint_url.rstrip("/") + "/"
    hint = f"check {source} and that the emulator there is running"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=ENDPOINT_PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return    # it answered
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return    # it answered TLS: certificates are botocore's to judge, with the user's CA settings
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        if isinstance(exc.reason, (socket.timeout, TimeoutError)):
            reason = f"no answer within {ENDPOINT_PROBE_TIMEOUT_S:g}s"
        problem = f"cannot reach the AWS endpoint {endpoint_url} ({reason})"
    except (socket.timeout, TimeoutError):
        problem = f"the AWS endpoint {endpoint_url} did not answer within {ENDPOINT_PROBE_TIMEOUT_S:g}s"
    except ssl.SSLError:
        return
    except (http.client.HTTPException, ConnectionError) as exc:
        problem = f"the AWS endpoint {endpoint_url} does not speak HTTP ({type(exc).__name__})"
    except OSError as exc:
        problem = f"cannot reach the AWS endpoint {endpoint_url} ({exc.strerror or exc})"
    raise UsageError(problem, hint)
