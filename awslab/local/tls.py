"""TLS on the local endpoints, as AWS has it: a certificate authority per home and the handshakes.

On AWS a PostgreSQL 15+ instance with its default parameter group (``rds.force_ssl=1``) refuses a
connection without TLS ("no pg_hba.conf entry ... no encryption") and takes ``sslmode=verify-full``
with the RDS CA bundle; an ElastiCache group with in-transit encryption speaks TLS only
(``redis-cli --tls``), a plain client gets its connection closed. Neither engine wheel here is
built with OpenSSL, so TLS ends at the endpoint's own listener (``forwarder.py``), which relays
the decrypted stream to the engine on loopback, and the certificates come from a CA that the local
AWS makes once per home (``<local>/tls/ca.pem``: the file to pass as ``sslrootcert`` / ``--cacert``,
the local stand-in for AWS's CA bundle).

Greeters (the server side, per accepted connection) and wrappers (the client side, for the tunnel
that lets a client without TLS reach a TLS-only endpoint, as AWS's guides do with stunnel) are
small functions of a socket, chosen per endpoint by the backing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from awslab.home.state import write_private

CA_FILE, CA_KEY, CERT_FILE, CERT_KEY = "ca.pem", "ca.key", "server.pem", "server.key"
HOSTNAMES = ("localhost",)
ADDRESSES = ("127.0.0.1",)
RENEW_BEFORE = dt.timedelta(days=30)
HANDSHAKE_TIMEOUT_S = 10.0

# PostgreSQL's wire protocol: the 8-byte requests a client may open with.
PG_SSL_REQUEST, PG_GSS_REQUEST, PG_CANCEL_REQUEST = 80877103, 80877104, 80877102
TLS_HANDSHAKE = 0x16   # the first byte of a TLS ClientHello record

REQUIRED, OPTIONAL = "required", "optional"

# What a greeter hands back: the socket to relay (TLS or not) and the bytes already read from it
# that the engine must still get; None when the connection is refused (answered; the caller closes).
Greeter = Callable[[socket.socket], "tuple[socket.socket, bytes] | None"]
Wrapper = Callable[[socket.socket], socket.socket]


class Authority:
    """The home's CA and the endpoints' certificate (made on first use, renewed near expiry)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_path = folder / CA_FILE
        self._server: ssl.SSLContext | None = None
        self._lock = threading.RLock()   # engines publish their endpoints from several threads

    def ensure(self) -> Path:
        with self._lock:
            return self._ensure()

    def _ensure(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (self.ca_path.exists() and (self.folder / CA_KEY).exists()):
            _make_ca(self.folder)
        cert = self.folder / CERT_FILE
        if not (cert.exists() and (self.folder / CERT_KEY).exists()) or _expiring(cert):
            _make_server_cert(self.folder)
        return self.ca_path

    def server_context(self) -> ssl.SSLContext:
        with self._lock:
            return self._server_context()

    def _server_context(self) -> ssl.SSLContext:
        if self._server is None:
            self._ensure()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2   # as RDS and ElastiCache
            ctx.load_cert_chain(self.folder / CERT_FILE, self.folder / CERT_KEY)
            ctx.num_tickets = 0   # nothing after the handshake but the clients' own data
            self._server = ctx
        return self._server


def client_context(ca_file: str | Path) -> ssl.SSLContext:
    """What ``sslmode=verify-full`` / ``redis-cli --tls --cacert`` check: the chain and the host name."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# --- server side: per endpoint, what a new connection must say first ------------------------------

def tls_greeter(ctx: ssl.SSLContext, mode: str) -> Greeter:
    """Redis with in-transit encryption: TLS from the first byte (``required``: plain clients are
    closed, as ElastiCache does; ``optional``: TransitEncryptionMode ``preferred`` takes both)."""

    def greet(client: socket.socket):
        if mode == OPTIONAL:
            first = client.recv(1, socket.MSG_PEEK)
            if not first or first[0] != TLS_HANDSHAKE:
                return client, b""
        try:
            return ctx.wrap_socket(client, server_side=True), b""
        except (ssl.SSLError, OSError):
            return None   # a plain client's bytes are no handshake: closed

    return greet


def postgres_greeter(ctx: ssl.SSLContext, mode: str) -> Greeter:
    """PostgreSQL: an SSLRequest is answered 'S' and the connection turns TLS; GSSAPI encryption is
    declined ('N'), as RDS does; a plain startup passes when TLS is ``optional`` and is refused as
    ``rds.force_ssl=1`` refuses it when ``required``. Cancel requests pass plain (libpq sends them so)."""

    def greet(client: socket.socket):
        while True:
            head = _recv_exactly(client, 8)
            if head is None:
                return None
            length, code = struct.unpack("!ii", head)
            if length == 8 and code == PG_GSS_REQUEST:
                client.sendall(b"N")
                continue
            if length == 8 and code == PG_SSL_REQUEST:
                client.sendall(b"S")
                try:
                    return ctx.wrap_socket(client, server_side=True), b""
                except (ssl.SSLError, OSError):
                    return None
            if mode == REQUIRED and code != PG_CANCEL_REQUEST:
                _refuse_plain_startup(client, head, length)
                return None
            return client, head

    return greet


def _refuse_plain_startup(client: socket.socket, head: bytes, length: int) -> None:
    """The ErrorResponse PostgreSQL sends when pg_hba.conf has only ``hostssl`` lines."""
    body = _recv_exactly(client, max(0, min(length, 10000) - 8)) or b""
    params = body.split(b"\0")
    fields = dict(zip(params[0::2], params[1::2]))
    user = fields.get(b"user", b"").decode(errors="replace")
    database = fields.get(b"database", b"").decode(errors="replace") or user
    host = client.getpeername()[0]
    message = f'no pg_hba.conf entry for host "{host}", user "{user}", database "{database}", no encryption'
    payload = b"".join(k + v.encode() + b"\0" for k, v in
                       ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", "28000"), (b"M", message))) + b"\0"
    try:
        client.sendall(b"E" + struct.pack("!i", len(payload) + 4) + payload)
    except OSError:
        pass


# --- client side: the tunnel for clients without TLS -----------------------------------------------

def tls_wrapper(ctx: ssl.SSLContext, hostname: str) -> Wrapper:
    return lambda upstream: ctx.wrap_socket(upstream, server_hostname=hostname)


def postgres_wrapper(ctx: ssl.SSLContext, hostname: str) -> Wrapper:
    """libpq's ``sslmode=verify-full`` opening: SSLRequest, 'S', then the TLS handshake."""

    def wrap(upstream: socket.socket) -> socket.socket:
        upstream.sendall(struct.pack("!ii", 8, PG_SSL_REQUEST))
        if _recv_exactly(upstream, 1) != b"S":
            raise ssl.SSLError("the server does not take TLS")
        return ctx.wrap_socket(upstream, server_hostname=hostname)

    return wrap


# --- helpers ----------------------------------------------------------------------------------------

def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def _make_ca(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "awslab local AWS"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"awslab local CA ({folder.parent.parent.name})")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write_private(folder / CA_KEY, _key_pem(key))
    (folder / CA_FILE).write_bytes(_cert_pem(cert))


def _make_server_cert(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((folder / CA_FILE).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    sans = [x509.DNSName(h) for h in HOSTNAMES] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=397))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_private(folder / CERT_KEY, _key_pem(key))
    (folder / CERT_FILE).write_bytes(_cert_pem(cert))


def _expiring(cert_path: Path) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return True
    return cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < RENEW_BEFORE


def _key_pem(key) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)
