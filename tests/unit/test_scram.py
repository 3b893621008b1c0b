"""SCRAM verifiers match PostgreSQL's format and are recognised from salt, iterations and digest."""

from __future__ import annotations

import base64
import hashlib
import hmac

from operations.scram import matches, verifier


def stored_form(v: str) -> dict:
    iterations, salt = v.split("$")[1].split(":")
    return {"iterations": int(iterations), "salt": salt, "digest": hashlib.sha256(v.encode()).hexdigest()}


def test_rfc7677_known_answer() -> None:
    # RFC 7677 section 3: user "user", password "pencil". The server signature computed from our
    # ServerKey over the RFC's AuthMessage must equal the RFC's, and the client proof likewise.
    v = verifier("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
    assert v.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    stored_key, server_key = (base64.b64decode(k) for k in v.split("$")[2].split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
    server_sig = hmac.new(server_key, auth.encode(), hashlib.sha256).digest()
    assert base64.b64encode(server_sig).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_sig = hmac.new(stored_key, auth.encode(), hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, client_sig, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_random_salt_each_time_but_same_password_matches() -> None:
    a, b = verifier("s3cret-pass"), verifier("s3cret-pass")
    assert a != b
    assert matches("s3cret-pass", stored_form(a))
    assert matches("s3cret-pass", stored_form(b))


def test_other_password_or_no_verifier_does_not_match() -> None:
    assert not matches("other", stored_form(verifier("s3cret-pass")))
    assert not matches("s3cret-pass", None)
