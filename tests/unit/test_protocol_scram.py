"""SCRAM-SHA-256, the server's side: RFC 7677's example exchange, a wrong password, and
malformed messages (each a ScramError, which the server answers with 28P01)."""

from __future__ import annotations

import base64

import pytest

from borealis.protocol.postgres.scram import ScramError, ScramExchange, ScramSecret

SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")


def exchange(password: str = "pencil") -> ScramExchange:
    return ScramExchange(ScramSecret.from_password(password, salt=SALT),
                         server_nonce=SERVER_NONCE)


def test_the_rfc_7677_example_exchange() -> None:
    x = exchange()
    assert x.client_first(CLIENT_FIRST) == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert x.client_final(CLIENT_FINAL) == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_a_wrong_password_fails() -> None:
    x = exchange("not pencil")
    x.client_first(CLIENT_FIRST)
    with pytest.raises(ScramError, match="authentication failed"):
        x.client_final(CLIENT_FINAL)


@pytest.mark.parametrize("first", [
    b"p=tls-server-end-point,,n=user,r=abc",  # channel binding: not offered
    b"n,a=admin,n=user,r=abc",  # an authorization identity
    b"n,,n=user",  # no nonce
    b"n,,garbage",
    b"\xff\xfe",
    b"",
])
def test_malformed_first_messages_are_refused(first: bytes) -> None:
    with pytest.raises(ScramError):
        exchange().client_first(first)


@pytest.mark.parametrize("final", [
    CLIENT_FINAL.replace(b"c=biws", b"c=eSws"),  # another channel binding
    CLIENT_FINAL.replace(b"r=rOpr", b"r=XOpr"),  # another nonce
    CLIENT_FINAL.split(b",p=")[0],  # no proof
    CLIENT_FINAL[:-4] + b"!!!=",  # not base64
    CLIENT_FINAL.replace(b"p=dHzb", b"p=AAAA"),  # a wrong proof
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",  # short proof
])
def test_malformed_or_wrong_final_messages_are_refused(final: bytes) -> None:
    x = exchange()
    x.client_first(CLIENT_FIRST)
    with pytest.raises(ScramError):
        x.client_final(final)


def test_a_final_message_before_the_first_is_refused() -> None:
    with pytest.raises(ScramError):
        exchange().client_final(CLIENT_FINAL)
