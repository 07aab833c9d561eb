"""View tokens open one checkout's status page, for a while, and nothing else."""

from __future__ import annotations

from onramp.view_tokens import issue_view_token, verify_view_token

SECRET = "s" * 40


def _token(now: float = 1_000.0, ttl: int = 60) -> str:
    return issue_view_token(SECRET, user_id="u-1", session_id="cs_1", now=now, ttl_seconds=ttl)


def test_a_token_names_its_user_and_session_until_it_expires() -> None:
    claims = verify_view_token(SECRET, _token(), now=1_030.0)
    assert claims is not None
    assert (claims.user_id, claims.session_id, claims.expires_at) == ("u-1", "cs_1", 1_060)
    assert verify_view_token(SECRET, _token(), now=1_060.0) is None


def test_a_changed_or_foreign_token_opens_nothing() -> None:
    token = _token()
    body, signature = token.split(".")
    forged_body = issue_view_token(
        SECRET, user_id="u-2", session_id="cs_1", now=1_000.0, ttl_seconds=60
    ).split(".")[0]
    assert verify_view_token(SECRET, f"{forged_body}.{signature}", now=1_000.0) is None
    assert verify_view_token("t" * 40, token, now=1_000.0) is None
    for garbage in ("", "a", "a.b.c", f"{body}.", "x" * 600, f"{body}.{signature}x"):
        assert verify_view_token(SECRET, garbage, now=1_000.0) is None


def test_a_token_with_non_ascii_characters_is_refused_not_an_error() -> None:
    # hmac.compare_digest raises TypeError on a str holding non-ASCII characters.
    for forged in ("\x83\U000ae417R.c\x82\xc3", "é.é", "abc.\u202e"):
        assert verify_view_token("s" * 32, forged, now=0) is None
