"""The policy in force: loaded from its file, replaceable at run time by an operator.

An update through the API is validated, persisted (setting ``policy``) and applies at once. It
also survives a restart, unless the policy *file* changed since (say a new ConfigMap): the file
is the operator's newer word then. The file's hash at the time of the update is kept to tell.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from scheduler.core.policy.load import parse_policy
from scheduler.core.policy.model import Policy
from scheduler.service.store import Store

POLICY_KEY = "policy"
POLICY_FILE_HASH_KEY = "policy.file_sha256"


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    policy: Policy
    text: str
    source: str  # the file, or "api" for an operator's update


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class PolicyState:
    def __init__(self, initial: PolicyVersion) -> None:
        self._lock = threading.Lock()
        self._version = initial

    @classmethod
    def load(cls, path: Path | None, store: Store) -> PolicyState:
        """The file's policy (or the default one), or a stored API update made since."""
        text = path.read_text() if path is not None else ""
        source = str(path) if path is not None else "<default policy>"
        stored = store.get_setting(POLICY_KEY)
        if stored is not None and store.get_setting(POLICY_FILE_HASH_KEY) == _digest(text):
            return cls(PolicyVersion(parse_policy(stored, "api"), stored, "api"))
        state = cls(PolicyVersion(parse_policy(text, source), text, source))
        # The file is the newer word: it is what every process (and replica) adopts now.
        store.put_setting(POLICY_FILE_HASH_KEY, _digest(text), 0.0)
        store.put_setting(POLICY_KEY, text, 0.0)
        return state

    @property
    def current(self) -> Policy:
        return self._version.policy

    @property
    def version(self) -> PolicyVersion:
        return self._version

    def refresh(self, store: Store) -> bool:
        """Adopt an update another process made through its API (the loop may run in a process
        of its own, or another replica's API took the update). True when the policy changed."""
        stored = store.get_setting(POLICY_KEY)
        if stored is None or stored == self._version.text:
            return False
        source = "api"
        with self._lock:
            self._version = PolicyVersion(parse_policy(stored, source), stored, source)
        return True

    def update(self, text: str, store: Store, now: float, file_text: str) -> PolicyVersion:
        """Validate (raises ``PolicyError``), persist, then apply ``text``."""
        policy = parse_policy(text, "api")
        store.put_setting(POLICY_FILE_HASH_KEY, _digest(file_text), now)
        store.put_setting(POLICY_KEY, text, now)
        with self._lock:
            self._version = PolicyVersion(policy, text, "api")
        return self._version


__all__ = ["PolicyState", "PolicyVersion"]
