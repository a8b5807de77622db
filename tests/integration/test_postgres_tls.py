"""TLS on the PostgreSQL port: psql and psycopg with ``sslmode=require`` and
``verify-full`` against a certificate made for 127.0.0.1 by a test CA, SCRAM-SHA-256 over
TLS, a server that requires TLS refusing clear connections, a client that does not trust
the CA refused at the handshake, and bytes sent after the SSLRequest before the handshake
refused (they could otherwise be taken as sent over TLS)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from borealis.control.processes import InstanceProcess, NodeProcess

PASSWORD = "tls-s3cret"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("borealis test CA"))
          .issuer_name(_name("borealis test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = (directory / "ca.pem", directory / "server.pem",
                                    directory / "server.key")
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_writer(storage_nodes: list[NodeProcess], instances: list[InstanceProcess],
               tmp_path: Path, volume: Path) -> tuple[InstanceProcess, Path]:
    ca, cert, key = make_certificates(tmp_path)
    p = InstanceProcess("tls", "az1", volume, tmp_path / "instances" / "tls",
                        tmp_path / "logs" / "tls.log",
                        extra_args=("--pg-listen", "127.0.0.1:0", "--pg-password", PASSWORD,
                                    "--pg-tls-cert", str(cert), "--pg-tls-key", str(key),
                                    "--pg-tls-required"))
    instances.append(p)
    p.start()
    return p, ca


def _dsn(p: InstanceProcess, **options: str) -> str:
    host, _, port = p.ready["pg_address"].rpartition(":")
    base = {"host": host, "port": port, "user": "postgres", "dbname": "postgres",
            "password": PASSWORD, "connect_timeout": "10", **options}
    return " ".join(f"{k}={v}" for k, v in base.items())


def test_psycopg_verify_full_with_scram_over_tls(
        tls_writer: tuple[InstanceProcess, Path]) -> None:
    p, ca = tls_writer
    with psycopg.connect(_dsn(p, sslmode="verify-full", sslrootcert=str(ca)),
                         autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 6 * 7").fetchone() == (42,)
    with psycopg.connect(_dsn(p, sslmode="require"), autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError, match=r"TLS|SSL|encryption"):
        psycopg.connect(_dsn(p, sslmode="disable"))
    with pytest.raises(psycopg.OperationalError):  # the system CAs do not know ours
        psycopg.connect(_dsn(p, sslmode="verify-full", sslrootcert="system"))


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_psql_with_sslmode_verify_full(tls_writer: tuple[InstanceProcess, Path]) -> None:
    p, ca = tls_writer
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    done = subprocess.run(
        ["psql", "-X", "-A", "-t", _dsn(p, sslmode="verify-full", sslrootcert=str(ca)),
         "-c", "SELECT 1"], capture_output=True, text=True, timeout=30, env=env,
        stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_bytes_sent_before_the_handshake_are_refused(
        tls_writer: tuple[InstanceProcess, Path]) -> None:
    p, _ = tls_writer
    host, _, port = p.ready["pg_address"].rpartition(":")
    params = b"user\x00postgres\x00database\x00postgres\x00\x00"
    startup = struct.pack(">ii", 8 + len(params), 196608) + params
    with socket.create_connection((host, int(port)), timeout=5) as s:
        # An SSLRequest and, in the same packet, a clear startup message: injected bytes
        # that a man in the middle would like the server to read as encrypted.
        s.sendall(struct.pack(">ii", 8, 80877103) + startup)
        reply = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert b"S" not in reply[:1]
    assert reply[:1] == b"E" and b"08P01" in reply
