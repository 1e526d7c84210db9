"""Ray's ``JobSubmissionClient`` with the two things a scheduler needs and Ray's lacks.

Why: read from ``ray/dashboard/modules/dashboard_sdk.py`` (Ray 2.60):
- ``SubmissionClient._do_request`` calls ``requests.request`` with no timeout, so a site that
  accepts the connection and never answers would hang the control loop. Here every request
  gets ``timeout_s`` unless the call gives its own.
- ``SubmissionClient._raise_error`` raises a bare ``RuntimeError("Request failed with status
  code 404: ...")``. Here it raises :class:`RayHttpError` carrying the status and the body, so
  "not found" and "server error" are told apart without parsing messages.

Both are the client's private hooks; the adapter's tests run against a real Ray head, so a Ray
upgrade that moves them fails there first.

Also: ``JobSubmissionClient`` and ``StateApiClient`` let the ``RAY_API_SERVER_ADDRESS`` and
``RAY_ADDRESS`` environment variables override the address they are given
(``ray/dashboard/utils.py: get_address_for_submission_client``). With several Ray sites in one
scheduler that would send every site's calls to one cluster, so :func:`address_override`
lets the adapter refuse instead.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

from ray.job_submission import JobSubmissionClient

from scheduler.core.adapter import AdapterError

ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")


class RayHttpError(AdapterError):
    """The Ray dashboard answered with an HTTP error ``status``; ``text`` is its body."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(f"HTTP {status}: {summary(text)}")


def summary(text: str) -> str:
    """The line that says what went wrong: Ray sends whole tracebacks as error bodies."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else "(empty body)"


def address_override(address: str) -> str | None:
    """The environment variable that would replace ``address`` in Ray's clients, if any."""
    for variable in ADDRESS_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return None if value.rstrip("/") == address else f"{variable}={value}"
    return None


class JobsClient(JobSubmissionClient):
    """A ``JobSubmissionClient`` whose requests time out and whose errors carry a status.

    Construction asks the dashboard for its version (Ray does, twice), so it needs the site.
    """

    def __init__(self, address: str, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(address)

    def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout_s)
        return super()._do_request(method, endpoint, **kwargs)

    def _raise_error(self, r: Any) -> NoReturn:
        raise RayHttpError(int(r.status_code), str(r.text))

    def version(self, *, timeout_s: float) -> str:
        """The cluster's Ray version: the cheapest call that proves the job API answers."""
        r = self._do_request("GET", "/api/version", timeout=timeout_s)
        if r.status_code != 200:
            self._raise_error(r)
        return str(r.json()["ray_version"])


__all__ = ["JobsClient", "RayHttpError", "address_override", "summary"]
