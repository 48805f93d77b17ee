"""Bearer tokens of the API: writes always need a ``write`` token; reads one when configured so.

Tokens are compared by their SHA-256 digests (a dict lookup: the time taken says nothing about how
much of a token was right) and are never logged or echoed: answers and logs name the token's
configured ``name`` only.
"""

from __future__ import annotations

import hashlib
import logging

from streams.api.problems import ProblemError
from streams.runtime.config import ApiToken

log = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pacing"'}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenBook:
    """Who may do what: the configured tokens and whether reads need one."""

    def __init__(self, tokens: tuple[ApiToken, ...], read_requires_token: bool):
        self._by_digest = {_digest(t.token.get_secret_value()): t for t in tokens}
        self.read_requires_token = read_requires_token

    def __len__(self) -> int:
        return len(self._by_digest)

    def check(self, authorization: str | None, *, write: bool) -> str | None:
        """The name of the token that allows this request (None: a read that needs none).

        Raises :class:`ProblemError` 401 (no valid token) or 403 (a read-only token on a write).
        """
        if not write and not self.read_requires_token:
            return None
        if not authorization:
            what = "writes" if write else "reads"
            raise ProblemError(401, f"{what} need a bearer token (Authorization: Bearer …)", headers=_CHALLENGE)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ProblemError(401, "the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
        found = self._by_digest.get(_digest(token.strip()))
        if found is None:
            raise ProblemError(401, "the bearer token is not valid", headers=_CHALLENGE)
        if write and found.access != "write":
            log.info("API: token %r (read-only) refused a write", found.name)
            raise ProblemError(403, f"token {found.name!r} may only read")
        return found.name
