"""SCRAM-SHA-256 password authentication, the server's side (RFC 5802, RFC 7677), sans-I/O.

As PostgreSQL does it: the mechanism is offered as ``SCRAM-SHA-256`` only (channel binding,
``-PLUS``, is not offered); the user name inside the client's first message is
ignored (PostgreSQL takes the startup packet's); the password is never kept, only the salted
keys (``ScramSecret``), computed once.

    exchange = ScramExchange(secret)
    server_first = exchange.client_first(client_first_message)   # AuthenticationSASLContinue
    server_final = exchange.client_final(client_final_message)   # AuthenticationSASLFinal
    # then AuthenticationOk; any ScramError: 28P01 and close.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from borealis.errors import BorealisError

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 4096
"""PostgreSQL 15's default (scram_iterations)."""
SALT_BYTES = 16
NONCE_BYTES = 18


class ScramError(BorealisError):
    """Authentication failed (a wrong password, or a malformed exchange)."""

    code = "auth"
    sqlstate = "28P01"


@dataclass(frozen=True, slots=True)
class ScramSecret:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(cls, password: str, *, salt: bytes | None = None,
                      iterations: int = ITERATIONS) -> ScramSecret:
        salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
        # RFC 7677 wants SASLprep; PostgreSQL applies it and falls back to the raw bytes
        # for passwords it cannot prepare. ASCII passwords are unchanged by it.
        salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        return cls(salt, iterations, hashlib.sha256(client_key).digest(),
                   _hmac(salted, b"Server Key"))


    def encode(self) -> str:
        """PostgreSQL's stored form (``pg_authid.rolpassword``):
        ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, base64."""
        b64 = base64.b64encode
        return (f"{MECHANISM}${self.iterations}:{b64(self.salt).decode()}$"
                f"{b64(self.stored_key).decode()}:{b64(self.server_key).decode()}")

    @classmethod
    def decode(cls, text: str) -> ScramSecret:
        """The stored form back (also what ``CREATE ROLE ... PASSWORD 'SCRAM-SHA-256$...'``
        from a dump carries); ValueError when it is not one."""
        try:
            mechanism, rest = text.split("$", 1)
            head, keys = rest.split("$", 1)
            iterations_text, salt = head.split(":", 1)
            stored, server = keys.split(":", 1)
            secret = cls(base64.b64decode(salt, validate=True), int(iterations_text),
                         base64.b64decode(stored, validate=True),
                         base64.b64decode(server, validate=True))
        except (ValueError, binascii.Error):
            raise ValueError("not a SCRAM-SHA-256 secret") from None
        if mechanism != MECHANISM or secret.iterations < 1 or len(secret.stored_key) != 32 \
                or len(secret.server_key) != 32:
            raise ValueError("not a SCRAM-SHA-256 secret")
        return secret


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _attributes(message: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError(f"malformed SCRAM {what}")
        out.setdefault(part[0], part[2:])
    return out


class ScramExchange:
    """One authentication attempt."""

    def __init__(self, secret: ScramSecret, *, server_nonce: str | None = None) -> None:
        self.secret = secret
        self._server_nonce = server_nonce or base64.b64encode(
            secrets.token_bytes(NONCE_BYTES)).decode("ascii")
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._gs2_header = ""

    def client_first(self, data: bytes) -> bytes:
        """The client-first-message; returns the server-first-message."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScramError("SCRAM client-first-message is not UTF-8") from exc
        flag, _, rest = text.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag not in ("n", "y") or authzid or not bare:
            # "p=...": channel binding, which we do not offer (no TLS yet); an authzid: no.
            raise ScramError("SCRAM: channel binding and authorization identities are not "
                             "supported")
        attributes = _attributes(bare, "client-first-message")
        client_nonce = attributes.get("r", "")
        if not client_nonce or "m" in attributes:
            raise ScramError("SCRAM client-first-message without a nonce")
        self._gs2_header = f"{flag},,"
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        salt = base64.b64encode(self.secret.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={self.secret.iterations}"
        return self._server_first.encode("ascii")

    def client_final(self, data: bytes) -> bytes:
        """The client-final-message; returns the server-final-message, or raises
        ScramError when the proof is wrong."""
        if not self._server_first:
            raise ScramError("SCRAM client-final-message before the first")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScramError("SCRAM client-final-message is not UTF-8") from exc
        without_proof, sep, proof_part = text.rpartition(",p=")
        if not sep:
            raise ScramError("SCRAM client-final-message without a proof")
        attributes = _attributes(without_proof, "client-final-message")
        expected_binding = base64.b64encode(self._gs2_header.encode("ascii")).decode("ascii")
        if attributes.get("c") != expected_binding:
            raise ScramError("SCRAM channel binding does not match")
        if attributes.get("r") != self._nonce:
            raise ScramError("SCRAM nonce does not match")
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ScramError("SCRAM proof is not base64") from exc
        auth_message = ",".join((self._client_first_bare, self._server_first,
                                 without_proof)).encode("utf-8")
        signature = _hmac(self.secret.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("password authentication failed")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(),
                                   self.secret.stored_key):
            raise ScramError("password authentication failed")
        server_signature = _hmac(self.secret.server_key, auth_message)
        return b"v=" + base64.b64encode(server_signature)
