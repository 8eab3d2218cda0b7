"""Who may use the local AWS: requests signed (AWS Signature Version 4) with its owner's keys.

The keys are generated once per home into ``<local dir>/credentials.json`` (0600, so only the user
who owns the home can read them); awslab's own clients use them, and ``awslab local env`` points
the AWS CLI or any SDK at them (a shared credentials file with an ``awslab-local`` profile, so the
keys are never printed). Access keys of IAM users made in the local AWS (and of roles
assumed through its STS) are accepted too, as AWS accepts them. Everything else is refused with the
error AWS gives for it, in the service's protocol: an unknown key, a signature that does not match
(the whole signature is checked, not just the key id), a missing one, a clock skewed by more than
15 minutes.

Runs in the server process; the client side reads the file through ``read_credentials``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import string
import uuid
from datetime import datetime, timezone
from pathlib import Path

CREDENTIALS_FILE = "credentials.json"
PROFILE_FILE = "aws-credentials"
PROFILE = "awslab-local"
MAX_SKEW_S = 15 * 60
_KEY_ALPHABET = string.ascii_uppercase + "234567"


def ensure_credentials(local_dir: Path) -> dict[str, str]:
    """The home's keys, generated (owner-only) the first time."""
    path = local_dir / CREDENTIALS_FILE
    found = read_credentials(local_dir)
    if found is not None:
        return found
    creds = {"aws_access_key_id": "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
             "aws_secret_access_key": secrets.token_urlsafe(30)[:40]}
    _write_private(path, json.dumps(creds))
    return creds


def ensure_profile_file(local_dir: Path, creds: dict[str, str]) -> Path:
    """The same keys as an AWS shared credentials file (profile ``awslab-local``, owner-only), so the
    AWS CLI and any SDK use them through AWS_SHARED_CREDENTIALS_FILE without the keys ever being
    printed."""
    path = local_dir / PROFILE_FILE
    text = (f"[{PROFILE}]\naws_access_key_id = {creds['aws_access_key_id']}\n"
            f"aws_secret_access_key = {creds['aws_secret_access_key']}\n")
    if not path.exists() or path.read_text() != text:
        _write_private(path, text)
    return path


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def read_credentials(local_dir: Path) -> dict[str, str] | None:
    try:
        data = json.loads((local_dir / CREDENTIALS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if isinstance(data, dict) and all(isinstance(data.get(k), str) for k in ("aws_access_key_id", "aws_secret_access_key")):
        return {k: data[k] for k in ("aws_access_key_id", "aws_secret_access_key")}
    return None


class Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind        # "unknown-key" | "bad-signature" | "missing" | "expired" | "denied"
        self.message = message


SIGNATURE_MESSAGE = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                     "Secret Access Key and signing method. Consult the service documentation for details.")


def _iam_key(access_key_id: str):
    """(IAM backend, user, key) of an active access key of an IAM user in the local AWS, or None."""
    from moto.iam.models import iam_backends

    for account in list(iam_backends.values()):
        for backend in list(dict.values(account)):
            for user in list(backend.users.values()):
                for key in user.access_keys:
                    if key.access_key_id == access_key_id and key.status == "Active":
                        return backend, user, key
    return None


def _iam_secret(access_key_id: str) -> str | None:
    """The secret of an active access key of an IAM user (or an assumed role) in the local AWS."""
    from moto.sts.models import sts_backends

    found = _iam_key(access_key_id)
    if found is not None:
        return found[2].secret_access_key
    for account in list(sts_backends.values()):
        for backend in list(dict.values(account)):
            for role in list(getattr(backend, "assumed_roles", [])):
                if role.access_key_id == access_key_id:
                    return role.secret_access_key
    return None


def _header(environ: dict, name: str) -> str | None:
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return environ.get(key)
    return environ.get(f"HTTP_{key}")


def check(environ: dict, body: bytes, owner: dict[str, str], now: datetime | None = None) -> str:
    """Raise Refused unless the request is signed with the owner's keys or a local IAM user's;
    the access key id it was signed with."""
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = _header(environ, "authorization") or ""
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise Refused("missing", "Request is missing Authentication Token")
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",") if "=" in part)
    try:
        access_key_id, date, region, service, _ = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        given = fields["Signature"]
    except (KeyError, ValueError):
        raise Refused("missing", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'") from None
    if access_key_id == owner["aws_access_key_id"]:
        secret = owner["aws_secret_access_key"]
    else:
        secret = _iam_secret(access_key_id)
        if secret is None:
            raise Refused("unknown-key", "The security token included in the request is invalid.")
    amz_date = _header(environ, "x-amz-date") or ""
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise Refused("bad-signature", SIGNATURE_MESSAGE) from None
    now = now or datetime.now(timezone.utc)
    if abs((now - when).total_seconds()) > MAX_SKEW_S:
        raise Refused("expired", f"Signature expired: {amz_date} is now earlier than "
                                 f"{(now.timestamp() - MAX_SKEW_S):.0f} (15 minutes of clock skew at most).")
    host = _header(environ, "host") or ""
    query = environ.get("QUERY_STRING") or ""
    url = f"http://{host}{environ.get('PATH_INFO') or '/'}" + (f"?{query}" if query else "")
    headers = {name: _header(environ, name) or "" for name in signed}
    request = AWSRequest(method=environ.get("REQUEST_METHOD", "GET"), url=url, data=body, headers=headers)
    request.context["timestamp"] = amz_date
    signer = _verifier_class()(Credentials(access_key_id, secret), service, region, signed)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not secrets.compare_digest(expected, given):
        raise Refused("bad-signature", SIGNATURE_MESSAGE)
    return access_key_id


@functools.cache
def _verifier_class():
    from botocore.auth import SigV4Auth

    class Verifier(SigV4Auth):
        """Signs over exactly the headers the request says it signed."""

        def __init__(self, credentials, service, region, signed_headers):
            super().__init__(credentials, service, region)
            self._signed = signed_headers

        def headers_to_sign(self, request):
            from botocore.awsrequest import HTTPHeaders

            out = HTTPHeaders()
            for name in self._signed:
                out[name] = request.headers.get(name, "")
            return out

        def payload(self, request):
            declared = request.headers.get("x-amz-content-sha256")
            return declared if declared else super().payload(request)

    return Verifier


def error_response(environ: dict, refused: Refused) -> tuple[str, list[tuple[str, str]], bytes]:
    """AWS's answer to a refused request, in the protocol of the service it was sent to."""
    request_id = str(uuid.uuid4())
    service = ""
    auth = _header(environ, "authorization") or ""
    if "Credential=" in auth:
        parts = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        service = parts[3] if len(parts) > 3 else ""
    json_protocol = bool(_header(environ, "x-amz-target")) or "json" in (environ.get("CONTENT_TYPE") or "")
    if json_protocol:
        code = {"unknown-key": "UnrecognizedClientException", "bad-signature": "InvalidSignatureException",
                "missing": "MissingAuthenticationTokenException", "expired": "InvalidSignatureException",
                "denied": "AccessDeniedException"}[refused.kind]
        body = json.dumps({"__type": code, "message": refused.message}).encode()
        return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id),
                                   ("x-amzn-ErrorType", code)], body
    if service == "ec2":
        code = "AuthFailure"
        message = "AWS was not able to validate the provided access credentials"
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
        return "401 Unauthorized", [("Content-Type", "text/xml")], body
    code = {"unknown-key": "InvalidClientTokenId", "bad-signature": "SignatureDoesNotMatch",
            "missing": "MissingAuthenticationToken", "expired": "SignatureDoesNotMatch",
            "denied": "AccessDenied"}[refused.kind]
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml(refused.message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
    return "403 Forbidden", [("Content-Type", "text/xml")], body


# What runs as the owner's OS user on this machine: only the owner may ask for it, not an IAM user
# made inside the local AWS (whose keys may be handed to others), unless the owner tagged that
# user ``awslab:run-commands=true`` (a least-privilege user the owner works as), nor a role
# session someone else opened. A role session the owner (or such a user) opened acts for them:
# awslab's own verify reaching a student's account through its StackSet role runs its host check
# there, as on AWS with the role's rights.
OWNER_ONLY = {"AmazonSSM.SendCommand", "AmazonSSM.StartSession", "AmazonSSM.CancelCommand"}
RUN_COMMANDS_TAG = "awslab:run-commands"
RUN_COMMANDS_REFUSED = ("Commands run on this machine as the local AWS's owner: only the owner's keys may send them, "
                        f"or an IAM user the owner tagged {RUN_COMMANDS_TAG}=true, or a role session one of them opened.")
_delegated: set[str] = set()   # access keys of those role sessions (in memory: a session outlives no server)
_SESSION_KEY = re.compile(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>")


def delegate(operation: str, caller: str, owner: dict[str, str], response: list[bytes]) -> None:
    """Remember the role session an AssumeRole by a caller who may run commands opened."""
    if operation == "AssumeRole" and may_run_commands(caller, owner):
        _delegated.update(m.decode() for m in _SESSION_KEY.findall(b"".join(response)))


def owner_only(environ: dict) -> bool:
    return (_header(environ, "x-amz-target") or "") in OWNER_ONLY


def may_run_commands(access_key_id: str, owner: dict[str, str]) -> bool:
    if access_key_id == owner["aws_access_key_id"] or access_key_id in _delegated:
        return True
    found = _iam_key(access_key_id)
    if found is None:
        return False
    backend, user, _ = found
    return backend.tagger.get_tag_dict_for_resource(user.arn).get(RUN_COMMANDS_TAG, "").lower() == "true"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
