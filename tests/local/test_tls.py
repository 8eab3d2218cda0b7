"""TLS on the local endpoints as AWS has it: ElastiCache with in-transit encryption speaks TLS only,
RDS PostgreSQL 15+ (rds.force_ssl=1) refuses plain sessions with PostgreSQL's own message and takes
verify-full against the home's CA; clients without TLS get a tunnel. Real sockets and handshakes."""

from __future__ import annotations

import json
import shlex
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import endpoint_map, host_of

from awslab.local import tls
from awslab.local.forwarder import Forwarder


@pytest.fixture()
def echo():
    """A plain TCP server that answers every chunk with 'echo:' + the chunk (the engine's place)."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def one(c=conn):
                with c:
                    while data := c.recv(65536):
                        c.sendall(b"echo:" + data)

            threading.Thread(target=one, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()
    srv.close()


@pytest.fixture()
def authority(tmp_path):
    return tls.Authority(tmp_path / "tls")


@pytest.fixture()
def fwd(tmp_path):
    f = Forwarder(tmp_path / "ports.json")
    yield f
    f.close_all()


def _tls_client(port: int, ca: Path, hostname: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return tls.client_context(ca).wrap_socket(raw, server_hostname=hostname)


def _until_closed(sock: socket.socket) -> bytes:
    heard = b""
    try:
        while chunk := sock.recv(65536):
            heard += chunk
    except ConnectionResetError:
        pass
    return heard


def _ask(sock: socket.socket, data: bytes) -> bytes:
    """Send ``data``, and what the echo server sent back for it: one 'echo:' and every byte, as
    however many chunks it arrived in (the forwarder may pass bytes it read first on their own)."""
    sock.sendall(data)
    got = b""
    while len(got.replace(b"echo:", b"")) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return b"echo:" + got.replace(b"echo:", b"") if got.startswith(b"echo:") else got


def test_the_home_ca__signs_a_certificate_for_the_local_addresses_and_is_kept(authority):
    from cryptography import x509

    ca = authority.ensure()
    cert = x509.load_pem_x509_certificate((authority.folder / tls.CERT_FILE).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert (authority.folder / tls.CA_KEY).stat().st_mode & 0o777 == 0o600
    assert (authority.folder / tls.CERT_KEY).stat().st_mode & 0o777 == 0o600
    before = ca.read_bytes()
    assert tls.Authority(authority.folder).ensure().read_bytes() == before   # made once per home


def test_a_tls_only_endpoint__verifies_against_the_home_ca_and_closes_plain_and_untrusted_clients(
        authority, fwd, echo, tmp_path):
    port = fwd.listen("cache:6379", lambda: echo, tls.tls_greeter(authority.server_context(), tls.REQUIRED))
    with _tls_client(port, authority.ensure()) as s:
        assert _ask(s, b"PING\r\n") == b"echo:PING\r\n"
        assert s.version() in ("TLSv1.2", "TLSv1.3")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:   # redis-cli without --tls
        plain.sendall(b"PING\r\n")
        heard = _until_closed(plain)
        assert b"echo" not in heard and heard[:1] in (b"", b"\x15")   # nothing, or a TLS alert, then closed
    other = tls.Authority(tmp_path / "other")   # a CA that is not the home's: the handshake fails
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_client(port, other.ensure())
    with pytest.raises(ssl.SSLCertVerificationError):   # verify-full checks the name too
        _tls_client(port, authority.ensure(), hostname="db.example.com")


def test_transit_encryption_preferred__takes_tls_and_plain(authority, fwd, echo):
    port = fwd.listen("cache:6379", lambda: echo, tls.tls_greeter(authority.server_context(), tls.OPTIONAL))
    with _tls_client(port, authority.ensure()) as s:
        assert _ask(s, b"PING\r\n") == b"echo:PING\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        assert _ask(plain, b"PING\r\n") == b"echo:PING\r\n"


def _startup(user: str, database: str) -> bytes:
    body = struct.pack("!i", 196608) + b"".join(k + b"\0" + v + b"\0" for k, v in
                                                ((b"user", user.encode()), (b"database", database.encode()))) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def test_postgres_with_force_ssl__refuses_a_plain_startup_as_postgres_does_and_takes_sslrequest(authority, fwd, echo):
    port = fwd.listen("db:5432", lambda: echo, tls.postgres_greeter(authority.server_context(), tls.REQUIRED))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(_startup("labadmin", "lab"))
        reply = plain.recv(1000)
        assert reply[:1] == b"E"
        fields = dict((f[:1], f[1:].decode()) for f in reply[5:].split(b"\0") if f)
        assert fields[b"S"] == "FATAL" and fields[b"C"] == "28000"
        assert fields[b"M"] == 'no pg_hba.conf entry for host "127.0.0.1", user "labadmin", database "lab", no encryption'
        assert plain.recv(10) == b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(struct.pack("!ii", 8, tls.PG_GSS_REQUEST))   # GSSAPI encryption: declined, as RDS does
        assert raw.recv(1) == b"N"
        raw.sendall(struct.pack("!ii", 8, tls.PG_SSL_REQUEST))
        assert raw.recv(1) == b"S"
        with tls.client_context(authority.ensure()).wrap_socket(raw, server_hostname="127.0.0.1") as s:
            startup = _startup("labadmin", "lab")
            assert _ask(s, startup) == b"echo:" + startup   # the engine gets the startup in the clear
    # Cancel requests pass plain, as libpq sends them.
    cancel = struct.pack("!iiii", 16, tls.PG_CANCEL_REQUEST, 1, 2)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        assert _ask(raw, cancel) == b"echo:" + cancel


def test_postgres_before_15__offers_tls_and_takes_plain(authority, fwd, echo):
    port = fwd.listen("db:5432", lambda: echo, tls.postgres_greeter(authority.server_context(), tls.OPTIONAL))
    startup = _startup("u", "d")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        assert _ask(plain, startup) == b"echo:" + startup


@pytest.mark.parametrize("protocol", ["redis", "postgres"])
def test_the_tunnel__carries_a_plain_client_over_verified_tls_and_drops_with_the_endpoint(
        authority, fwd, echo, protocol):
    ctx = authority.server_context()
    greeter = tls.postgres_greeter if protocol == "postgres" else tls.tls_greeter
    wrapper = tls.postgres_wrapper if protocol == "postgres" else tls.tls_wrapper
    port = fwd.listen("ep", lambda: echo, greeter(ctx, tls.REQUIRED))
    tunnel = fwd.listen("ep#tunnel", lambda: ("127.0.0.1", port),
                        wrap=wrapper(tls.client_context(authority.ensure()), "127.0.0.1"))
    with socket.create_connection(("127.0.0.1", tunnel), timeout=5) as c:
        payload = _startup("u", "d") if protocol == "postgres" else b"PING\r\n"
        assert _ask(c, payload) == b"echo:" + payload
        big = b"x" * 1_000_000   # more than one TLS record and socket buffer, both ways
        assert _ask(c, big) == b"echo:" + big
        assert fwd.drop("ep") == 1   # a failover on the endpoint ends the tunnelled session too
        c.settimeout(5)
        assert c.recv(10) == b""


# --- the lab, for real: psql and redis-cli against the engines ------------------------------------

def _run(line: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line + " " + " ".join(args)], capture_output=True, text=True, timeout=60)


@pytest.mark.lifecycle
@pytest.mark.engines
def test_the_lab__tls_as_on_aws_for_psql_redis_cli_and_verify(awslab, engines, stack):
    from awslab.verify.live import psql_with_tls, redis_cli_with_tls, tool_path

    assert awslab("up", "week6", "--name", stack).code == 0
    # `connect` goes through the host, as SSM port forwarding does: the host's view of the endpoints.
    mine = {ep: i for ep, i in endpoint_map(engines, host_of(awslab, stack)).items() if stack in ep}
    db_ep = next(i for ep, i in mine.items() if ep.startswith(f"{stack}-db."))
    cache_eps = [i for ep, i in mine.items() if ".cache." in ep]
    # PostgreSQL 16 with the default parameter group: TLS required; the cache: TLS on every endpoint.
    assert db_ep["tls"] == "required" and cache_eps and all(i["tls"] == "required" for i in cache_eps)

    db = awslab("connect", "db", "--name", stack, "--output", "json")
    how = json.loads(db.out)
    line = how["lines"][0]
    if psql_with_tls():   # as on AWS: verify-full with the root certificate
        assert f"sslmode=verify-full sslrootcert={how['ca']}" in line and f"port={db_ep['port']} " in line
        assert how["note"] == ""
    else:                 # a psql without TLS goes through the tunnel, and the note says so
        assert f"port={db_ep['tunnel_port']} " in line and "tunnel" in how["note"]
    assert _run(line, "-tAc", shlex.quote("SELECT 41 + 1")).stdout.strip() == "42"
    # The wheel's psql has no TLS: refused with PostgreSQL's own words, as rds.force_ssl=1 refuses it.
    passfile = line.split("PGPASSFILE=")[1].split()[0]
    plain = _run(f"PGPASSFILE={passfile} {shlex.quote(tool_path('psql'))}",
                 shlex.quote(f"host=127.0.0.1 port={db_ep['port']} user=labadmin dbname=lab sslmode=disable"), "-c", "'SELECT 1'")
    assert plain.returncode != 0 and "no pg_hba.conf entry" in plain.stderr and "no encryption" in plain.stderr
    # rds.force_ssl lives in the stack's DB parameter group; turned off in place (`up --set`,
    # ModifyDBParameterGroup: dynamic on RDS), the same plain session is taken; on again, refused.
    assert awslab("up", "week6", "--name", stack, "--set", "database.force_ssl=false").code == 0
    taken = _run(f"PGPASSFILE={passfile} {shlex.quote(tool_path('psql'))}",
                 shlex.quote(f"host=127.0.0.1 port={db_ep['port']} user=labadmin dbname=lab sslmode=disable"), "-tAc", "'SELECT 7'")
    assert taken.returncode == 0 and taken.stdout.strip() == "7", taken.stderr
    assert awslab("up", "week6", "--name", stack).code == 0
    again = _run(f"PGPASSFILE={passfile} {shlex.quote(tool_path('psql'))}",
                 shlex.quote(f"host=127.0.0.1 port={db_ep['port']} user=labadmin dbname=lab sslmode=disable"), "-c", "'SELECT 1'")
    assert again.returncode != 0 and "no encryption" in again.stderr

    cache = json.loads(awslab("connect", "cache", "--name", stack, "--output", "json").out)
    line = cache["lines"][0]
    if redis_cli_with_tls():
        assert f"--tls --cacert {cache['ca']}" in line
    else:
        assert "tunnel" in cache["note"]
    assert _run(line, "SET", "tls-check", "yes").stdout.strip() == "OK"
    assert _run(line, "GET", "tls-check").stdout.strip() == "yes"
    primary = next(i for i in cache_eps if i["role"] == "primary")
    token_file = line.split("cat ")[1].split(")")[0].strip("'\"")
    plain = _run(f"REDISCLI_AUTH=\"$(cat {token_file})\" {shlex.quote(tool_path('redis-cli'))} -h 127.0.0.1 "
                 f"-p {primary['port']}", "GET", "tls-check")
    assert "yes" not in plain.stdout

    import redis
    token = Path(token_file).read_text()
    client = redis.Redis(host="127.0.0.1", port=primary["port"], password=token, ssl=True, ssl_ca_certs=cache["ca"],
                         socket_timeout=5)
    assert client.get("tls-check") == b"yes"
    client.close()

    verify = {r["id"]: r for r in json.loads(awslab("verify", "--name", stack, "--check", "live", "--output", "json").out)}
    assert verify["live.host-to-db"]["status"] == "PASS" and "over TLS" in verify["live.host-to-db"]["detail"]
    assert "without TLS was refused" in verify["live.host-to-db"]["detail"]
    assert verify["live.host-to-cache"]["status"] == "PASS" and "plain connection was refused" in verify["live.host-to-cache"]["detail"]
    assert awslab("down", "--name", stack, "--yes", "--delete-snapshots").code == 0
