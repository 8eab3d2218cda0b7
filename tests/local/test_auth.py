"""A local endpoint only its owner can use: requests signed with other keys, with the right key id
but a wrong secret, unsigned or from a skewed clock are refused with AWS's error in each service's
protocol; moto's own /moto-api/ is closed too; another OS user can read neither the keys nor the
secrets; the home's files are owner-only."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import server_keys


def _client(service, local, **keys):
    return boto3.client(service, endpoint_url=local.endpoint_url, region_name="us-east-1", **keys)


def _code(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


OTHER = {"aws_access_key_id": "AKIAOTHERUSERKEY0001", "aws_secret_access_key": "x" * 40}


def test_other_keys__refused_with_each_services_own_error(local):
    assert _code(lambda: _client("ec2", local, **OTHER).describe_vpcs()) == ("AuthFailure", 401)
    assert _code(lambda: _client("rds", local, **OTHER).describe_db_instances()) == ("InvalidClientTokenId", 403)
    assert _code(lambda: _client("secretsmanager", local, **OTHER).list_secrets()) == ("UnrecognizedClientException", 400)


def test_the_owners_key_id_with_a_wrong_secret__the_signature_is_checked(local, local_server):
    wrong = {**server_keys(local_server[1]), "aws_secret_access_key": "y" * 40}
    assert _code(lambda: _client("sts", local, **wrong).get_caller_identity()) == ("SignatureDoesNotMatch", 403)
    assert _code(lambda: _client("ssm", local, **wrong).describe_parameters()) == ("InvalidSignatureException", 400)
    right = server_keys(local_server[1])
    assert _client("sts", local, **right).get_caller_identity()["Account"] == "123456789012"


def test_a_skewed_clock__refused_as_expired(local, local_server, monkeypatch):
    import botocore.auth

    real = botocore.auth.datetime.datetime

    class Late(real):
        @classmethod
        def utcnow(cls):
            return real.utcnow() - timedelta(minutes=20)

        @classmethod
        def now(cls, tz=None):
            return real.now(tz) - timedelta(minutes=20)

    monkeypatch.setattr(botocore.auth.datetime, "datetime", Late)
    code, status = _code(lambda: _client("rds", local, **server_keys(local_server[1])).describe_db_instances())
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert datetime.now(timezone.utc)   # (the real clock is untouched)


def test_unsigned_requests_and_motos_own_api__refused(local):
    for path, data in (("/moto-api/reset", b""), ("/", b"Action=DescribeVpcs&Version=2016-11-15")):
        req = urllib.request.Request(local.endpoint_url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 403 and b"MissingAuthenticationToken" in info.value.read()


def test_home_files__owner_only(awslab, local, local_server):
    home = local_server[1] / "local"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("credentials.json", "aws-credentials", "server.json", "server.log", "server.lock"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("python3", path="/usr/bin:/bin"),
                    reason="needs root to act as another OS user, and a system python3 that user can run")
def test_another_os_user__can_read_neither_the_keys_nor_a_secret(local, local_server):
    other = pwd.getpwnam("nobody")
    keys_file = local_server[1] / "local" / "credentials.json"
    # The other user has no boto3 (and cannot read our venv): a GetSecretValue signed with its own
    # key, by hand, the way any SDK would send it.
    script = (
        "import urllib.request, urllib.error, time\n"
        f"try:\n    open({str(keys_file)!r}).read(); print('READ KEYS')\nexcept PermissionError:\n    print('no keys')\n"
        "stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())\n"
        f"req = urllib.request.Request({local.endpoint_url!r} + '/', data=b'{{\"SecretId\": \"x\"}}', method='POST', headers={{\n"
        "  'X-Amz-Target': 'secretsmanager.GetSecretValue', 'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Date': stamp,\n"
        "  'Authorization': 'AWS4-HMAC-SHA256 Credential=AKIANOBODY0000000000/' + stamp[:8] + '/us-east-1/secretsmanager/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=' + '0' * 64})\n"
        "try:\n    urllib.request.urlopen(req, timeout=10); print('GOT SECRET')\n"
        "except urllib.error.HTTPError as exc:\n    print(exc.code, exc.headers.get('x-amzn-ErrorType'))\n"
    )
    done = subprocess.run([shutil.which("python3", path="/usr/bin:/bin"), "-c", script], capture_output=True, text=True,
                          timeout=60, user=other.pw_uid, group=other.pw_gid, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
                          cwd="/")
    assert done.stdout.split("\n")[:2] == ["no keys", "400 UnrecognizedClientException"], done.stderr
