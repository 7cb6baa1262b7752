"""Bearer tokens are checked against sha256 digests only."""

from __future__ import annotations

import hashlib

from query.auth import token_accepted, token_hash


def test_a_token_is_accepted_by_its_digest_and_no_other() -> None:
    digests = [token_hash("alpha"), token_hash("beta")]
    assert digests[0] == hashlib.sha256(b"alpha").hexdigest()
    assert token_accepted("beta", digests) and token_accepted("alpha", digests)
    assert not token_accepted("gamma", digests)
    assert not token_accepted(digests[0], digests)  # the digest itself is not a token
    assert not token_accepted("alpha", [])
