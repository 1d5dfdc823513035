"""GLYPH tokens are PyJWT's tokens: the signer writes byte for byte what
`jwt.encode` writes for the same claims and key, tokens PyJWT made verify,
and every token is judged as PyJWT's decode judges it."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from lukhas_glyphs import clock
from lukhas_glyphs.tokens import Signer, key_id

KEY = b"k" * 64  # long enough for HS512 too: PyJWT warns below
OLD_KEY = b"o" * 64
CLAIM_NAMES = ("jti", "source", "target", "symbol", "priority", "iat", "exp")

keys = st.binary(min_size=32, max_size=96)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)
glyph_claims = st.fixed_dictionaries({
    "jti": st.text(), "source": st.text(), "target": st.text(),
    "symbol": st.sampled_from(["LINK", "TRUST", "GUARD", "FLOW", "SEAL", "ECHO"]),
    "priority": st.sampled_from(["LOW", "NORMAL", "HIGH", "CRITICAL"]),
    "iat": st.integers(0, 2**40), "exp": st.integers(0, 2**40)})
# Any claims PyJWT encodes as plain JSON: its own rules are for `iss` (a string)
# and datetimes, which the signer is never given.
any_claims = st.dictionaries(st.text().filter(lambda name: name != "iss"), json_values, max_size=8)


def pyjwt_token(claims: dict[str, Any], key: bytes, **header: Any) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": key_id(key), **header})


def pyjwt_verdict(token: str, keys: list[bytes]) -> tuple[dict[str, Any] | None, str | None]:
    """The judgement made with PyJWT's decode alone: canonical base64 in every
    segment, the header's key id and algorithm, the signature, then the claims."""
    segments = token.split(".")

    def canonical(segment: str) -> bool:
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except ValueError:
            return False
        return segment != "" and base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == segment

    if len(segments) != 3 or not all(canonical(s) for s in segments):
        return None, "malformed"
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return None, "malformed"
    key = {key_id(k): k for k in keys}.get(header.get("kid"))  # type: ignore[arg-type]
    if header.get("alg") != "HS256" or key is None:
        return None, "bad_signature"
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={
            "verify_exp": False, "verify_iat": False, "require": list(CLAIM_NAMES)})
    except jwt.InvalidSignatureError:
        return None, "bad_signature"
    except jwt.InvalidTokenError:
        return None, "malformed"
    if not isinstance(claims.get("exp"), int) or not isinstance(claims.get("jti"), str):
        return None, "malformed"
    return claims, "expired" if claims["exp"] <= clock.now().timestamp() else None


def live(claims: dict[str, Any]) -> dict[str, Any]:
    return {**claims, "exp": int((clock.now() + timedelta(days=1)).timestamp())}


@given(claims=glyph_claims, key=keys)
def test_a_glyph_token_is_the_one_pyjwt_encodes(claims, key):
    assert Signer(key).sign(claims) == pyjwt_token(claims, key)


@given(claims=any_claims, key=keys)
@example(claims={"é": "☃", "n": 2**70, "f": 0.1, "nested": {"b": [1, None]}}, key=KEY)
def test_any_claims_are_serialised_as_pyjwt_serialises_them(claims, key):
    assert Signer(key).sign(claims) == pyjwt_token(claims, key)


@given(claims=glyph_claims)
def test_tokens_pyjwt_made_verify_with_their_claims(claims):
    signer = Signer(KEY, [OLD_KEY])
    claims = live(claims)
    assert signer.verify(pyjwt_token(claims, KEY)) == (claims, None)
    assert signer.verify(pyjwt_token(claims, OLD_KEY)) == (claims, None)
    expired = {**claims, "exp": int(clock.now().timestamp())}
    assert signer.verify(pyjwt_token(expired, KEY)) == (expired, "expired")


@given(claims=glyph_claims, position=st.integers(0), replacement=st.characters())
def test_a_changed_character_is_judged_as_pyjwt_judges_it(claims, position, replacement):
    token = Signer(KEY).sign(live(claims))
    position %= len(token)
    tampered = token[:position] + replacement + token[position + 1:]
    verdict = Signer(KEY).verify(tampered)
    assert verdict == pyjwt_verdict(tampered, [KEY])
    if tampered != token:
        assert verdict[1] in ("malformed", "bad_signature")


@pytest.mark.parametrize("header, claims, reason", [
    ({}, {"nbf": 4102444800}, "malformed"),  # not yet valid: PyJWT's own check
    ({}, {"aud": "someone"}, "malformed"),
    ({}, {"sub": 7}, "malformed"),
    ({}, {"note": "extra"}, None),
    ({"cty": "x"}, {}, None),  # a header this module does not write
    ({"alg": "HS512"}, {}, "bad_signature"),
    ({"kid": "unknown"}, {}, "bad_signature"),
    ({"crit": ["exp"]}, {}, "malformed"),
])
def test_headers_and_claims_only_a_key_holder_writes_are_judged_by_pyjwt(header, claims, reason):
    glyph = live({"jti": "gly_1", "source": "user:ada", "target": "doc:a", "symbol": "LINK",
                  "priority": "NORMAL", "iat": 0, **claims})
    token = jwt.encode(glyph, KEY, algorithm=header.get("alg", "HS256"),
                       headers={"kid": key_id(KEY), **header})
    verdict = Signer(KEY).verify(token)
    assert verdict[1] == reason
    assert verdict == pyjwt_verdict(token, [KEY])


@pytest.mark.parametrize("change", [
    {"exp": "soon"}, {"exp": None}, {"jti": 1}, {"iat": None}, "not an object", "[1]",
])
def test_claims_signed_with_the_key_but_not_a_glyphs_are_malformed(change):
    glyph = live({name: "x" for name in CLAIM_NAMES} | {"iat": 0})
    if isinstance(change, dict):
        payload = json.dumps({**glyph, **change}, separators=(",", ":")).encode()
    else:
        payload = change.encode()
    token = jwt.api_jws.encode(payload, KEY, algorithm="HS256", headers={"kid": key_id(KEY)})
    assert Signer(KEY).verify(token) == (None, "malformed") == pyjwt_verdict(token, [KEY])


def test_a_rotated_out_key_no_longer_verifies():
    claims = live({name: "x" for name in CLAIM_NAMES} | {"iat": 0})
    assert Signer(KEY).verify(Signer(OLD_KEY).sign(claims)) == (None, "bad_signature")


def test_a_second_spelling_of_the_same_bytes_is_malformed():
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    def twin(segment: str) -> str:
        # The last character of a segment whose length is not a multiple of 4
        # has unused low bits: flipping one spells the same bytes differently.
        assert len(segment) % 4, segment
        return segment[:-1] + alphabet[alphabet.index(segment[-1]) ^ 1]

    # A jti whose payload segment's length is not a multiple of 4.
    tokens = (Signer(KEY).sign(live({name: "x" for name in CLAIM_NAMES} | {"iat": 0, "jti": jti}))
              for jti in ("a", "ab", "abc"))
    header, payload, signature = next(t for t in tokens if len(t.split(".")[1]) % 4).split(".")
    for segments in ([header, twin(payload), signature], [header, payload, twin(signature)],
                     [header, payload + "=", signature], [header + " ", payload, signature]):
        token = ".".join(segments)
        assert Signer(KEY).verify(token) == (None, "malformed") == pyjwt_verdict(token, [KEY])
