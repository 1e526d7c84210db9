"""Bearer tokens -> principals. Tokens are compared by their SHA-256, never kept in logs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from scheduler.service.config import Principal


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        self._by_digest = {_digest(t): p for t, p in tokens.items()}

    def principal(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization: Bearer TOKEN`` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._by_digest.get(_digest(token.strip()))


__all__ = ["Authenticator"]
