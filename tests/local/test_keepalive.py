"""The local AWS keeps a client's connection open between requests, as AWS's endpoints do: one TCP
connection for a client's run of requests, not one per request (werkzeug's own server closes each
after one answer). A connection whose request body was not read, or that werkzeug answers itself
(a chunked body), still closes after its answer, and a client never waits on a half-read stream."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import boto3
import urllib3.util.connection
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from conftest import server_keys

BODY = b"Action=DescribeVpcs&Version=2016-11-15"


def _signed(local, keys: dict, body: bytes = BODY, extra: dict | None = None) -> bytes:
    """A whole HTTP/1.1 request as bytes, signed with ``keys`` for EC2."""
    request = AWSRequest(method="POST", url=f"{local.endpoint_url}/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"]), "ec2", "us-east-1").add_auth(request)
    prepared = request.prepare()
    head = "".join(f"{k}: {v}\r\n" for k, v in {**prepared.headers, **(extra or {})}.items())
    if not extra or "Transfer-Encoding" not in extra:
        head += f"Content-Length: {len(body)}\r\n"
    return f"POST / HTTP/1.1\r\nHost: {urlsplit(local.endpoint_url).netloc}\r\n{head}\r\n".encode() + body


def _answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP answer read off ``sock`` by its Content-Length: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of an answer"
        body += chunk
    return head, body


def _address(local) -> tuple[str, int]:
    url = urlsplit(local.endpoint_url)
    return url.hostname, url.port


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_keepalive__a_clients_requests_share_one_connection(local, local_server, monkeypatch):
    made = []
    original = urllib3.util.connection.create_connection

    def counted(*args, **kwargs):
        made.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counted)
    ec2 = boto3.client("ec2", endpoint_url=local.endpoint_url, region_name="us-east-1", **server_keys(local_server[1]))
    answers = [ec2.describe_vpcs() for _ in range(20)]
    assert len(made) == 1, made   # werkzeug's own server: 20, one per request
    assert all(a["ResponseMetadata"]["HTTPStatusCode"] == 200 for a in answers)
    assert "connection" not in answers[-1]["ResponseMetadata"]["HTTPHeaders"]


def test_keepalive__requests_one_after_another_on_one_socket_are_each_answered_whole(local, local_server):
    keys = server_keys(local_server[1])
    with socket.create_connection(_address(local), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(_signed(local, keys))
            head, body = _answer(sock)
            assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower(), head
            assert body.rstrip().endswith(b"</DescribeVpcsResponse>"), body[-200:]
        # A refused request is answered on the same connection, which stays open too.
        sock.sendall(_signed(local, {**keys, "aws_secret_access_key": "x" * 40}))
        head, body = _answer(sock)
        assert head.startswith(b"HTTP/1.1 401") and b"AuthFailure" in body


def test_keepalive__a_body_left_unread_or_a_chunked_one_closes_the_connection_after_its_answer(local, local_server):
    keys = server_keys(local_server[1])
    address = _address(local)
    # The health check answers without reading a body: what follows it on the stream is unknown.
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"POST /awslab/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        head, body = _answer(sock)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower(), head
        assert b'"pid"' in body
        assert _closed(sock)
    # A chunked body is werkzeug's to read, and it closes as it always did.
    with socket.create_connection(address, timeout=10) as sock:
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
        request = _signed(local, keys, extra={"Transfer-Encoding": "chunked"})
        sock.sendall(request[: -len(BODY)] + chunked)
        head, _ = _answer(sock)
        assert b"connection: close" in head.lower(), head
        assert _closed(sock)


def test_keepalive__once_the_server_begins_to_stop_a_kept_connections_next_request_is_not_served():
    """A kept-alive connection outlives the listening socket while the server stops (its last save,
    then its engines): a request on it then would be answered and lost with the server. Once
    stopping has begun (``_closing``, set under the state lock before the last save) it is not
    served: the connection closes without an answer, as a port that no longer answers would."""
    import threading

    from werkzeug.serving import make_server

    from awslab.local import server as local_server

    served = []

    def app(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ[local_server.DRAINED] = True
        local_server._refuse_if_closing()
        served.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    httpd = make_server("127.0.0.1", 0, app, threaded=True, request_handler=local_server._handler_class())
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", httpd.server_port), timeout=10) as sock:
            sock.sendall(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            head, body = _answer(sock)
            assert head.startswith(b"HTTP/1.1 200") and body == b"ok"
            local_server._closing.set()
            sock.sendall(b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            assert _closed(sock)   # no answer at all: werkzeug's own path would have answered 500
        assert served == ["/first"]
    finally:
        local_server._closing.clear()
        httpd.shutdown()
        httpd.server_close()
