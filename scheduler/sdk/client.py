"""``Client`` and ``AsyncClient``: the Isthmus REST API as typed Python calls.

Both hold one ``httpx`` connection pool; use them as context managers (or call ``close``).
Every call retries, with exponential backoff (``backoff_s``, 2x, 4x ...), when the connection
fails or breaks and when the server answers 502, 503 or 504 — never on a 4xx, which raises at
once. A submission carries an idempotency key (a fresh one per ``submit`` call unless you give
yours), so a retried submission returns the job the first attempt created instead of a second.

Example::

    from scheduler.sdk import Client

    with Client("http://127.0.0.1:8000", "local-acme-token-000000001") as isthmus:
        job = isthmus.submit(name="finetune", entrypoint="python train.py",
                             accelerators_per_worker=8, allowed_types=["H20-96G", "A100-80G"],
                             runtime_h=6.0)
        job = isthmus.wait(job.id, progress=True)
        print(job.state, job.site)
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from scheduler.sdk import _wire
from scheduler.sdk.errors import ApiError, Timeout, TransportError
from scheduler.sdk.progress import watching
from scheduler.sdk.values import Explanation, Job, JobEvent, JobState, SiteInfo

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.2


def _check(retries: int, backoff_s: float) -> None:
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if backoff_s < 0:
        raise ValueError(f"backoff_s must be >= 0, got {backoff_s}")


def _stream_timeout(timeout: float | None, follow: bool) -> httpx.Timeout:
    # A followed log may stay silent for as long as the job runs quietly.
    return httpx.Timeout(timeout, read=None) if follow else httpx.Timeout(timeout)


class Client:
    """A synchronous client of one Isthmus server.

    Args:
        url: the server, e.g. ``"http://127.0.0.1:8000"``.
        token: a bearer token (a tenant's, or the operator's).
        timeout: seconds to wait for a connection and for each response.
        retries: further attempts after a failed connection or a 502/503/504.
        backoff_s: sleep before the first retry; doubled for each further one.
        transport: an ``httpx`` transport, e.g. ``httpx.MockTransport(handler)`` in tests.

    Example::

        with Client("http://127.0.0.1:8000", token) as isthmus:
            for job in isthmus.list(states=["RUNNING"]):
                print(job.id, job.site)
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        _check(retries, backoff_s)
        self.url = url.rstrip("/")
        self.retries, self.backoff_s, self.timeout = retries, backoff_s, timeout
        self._http = httpx.Client(base_url=self.url, headers=_wire.headers(token),
                                  timeout=timeout, transport=transport)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection pool. Example: ``client.close()``."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # ------------------------------------------------------------------ transport

    def _send(self, call: _wire.Call, *, stream: bool = False,
              timeout: httpx.Timeout | None = None) -> httpx.Response:
        """Send ``call``, retrying as the module docstring says; a 2xx response or raise."""
        request = self._http.build_request(
            call.method, call.path, params=call.params or None, json=call.json,
            headers=dict(call.headers), timeout=timeout or httpx.USE_CLIENT_DEFAULT,
        )
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.send(request, stream=stream)
            except httpx.HTTPError as err:
                if last or not _wire.is_retryable(err):
                    raise _wire.unreachable(self.url, err, attempt + 1) from err
                time.sleep(_wire.backoff_s(self.backoff_s, attempt))
                continue
            if response.is_success:
                return response
            try:
                response.read()
            except httpx.HTTPError:
                pass
            finally:
                response.close()
            if response.status_code in _wire.RETRY_STATUSES and not last:
                time.sleep(_wire.backoff_s(self.backoff_s, attempt))
                continue
            raise _wire.error_of(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, call: _wire.Call) -> Any:
        return _wire.json_of(self._send(call))

    # ------------------------------------------------------------------ jobs

    def submit(
        self,
        *,
        name: str,
        entrypoint: str,
        accelerators_per_worker: int,
        allowed_types: Sequence[str],
        runtime_h: float | Mapping[str, float],
        workers: int = 1,
        min_memory_gb: float = 0.0,
        priority: int = 0,
        deadline: datetime | None = None,
        datasets: Iterable[str] = (),
        user_location: str | None = None,
        max_latency_ms: float | None = None,
        preemptible: bool = False,
        checkpointable: bool = False,
        home_region: str | None = None,
        max_runtime_h: float | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        tenant: str | None = None,
    ) -> Job:
        """Submit a job; it is persisted (PENDING) before this returns.

        Args:
            name: a short name (letters, digits, ``-_.``).
            entrypoint: the shell command the Ray job runs.
            accelerators_per_worker: accelerators each worker needs, all of one type.
            allowed_types: accelerator types the job can use, e.g. ``["H20-96G", "A100-80G"]``.
            runtime_h: estimated hours, on the first allowed type (a number) or per type.
            workers: workers in the gang; all start together.
            min_memory_gb: memory each accelerator must have.
            priority: 0 (default) to 10.
            deadline: when it must be done; a naive datetime is local time.
            datasets: ids of datasets the job reads (their residency rules apply).
            user_location: where the job's users are (for ``max_latency_ms``).
            max_latency_ms: the round-trip latency the users may see, at most.
            preemptible: the job may be stopped for more urgent work.
            checkpointable: a stopped job resumes from a checkpoint, not from the start.
            home_region: the region the job must stay in, if any.
            max_runtime_h: a hard limit: the site stops the job after this many hours.
            runtime_env: passed to Ray as is (pip, env_vars, working_dir ...).
            labels: free-form key/value labels.
            idempotency_key: repeats of one key return the first job (default: a fresh key
                per call, which protects this call's own retries).
            tenant: the tenant to submit for (operators only; a tenant token implies it).

        Returns:
            The job as stored.

        Raises:
            BadRequest: a field is invalid or names an unknown type, dataset or location;
                ``err.field`` is its path, e.g. ``"gang.allowed_types[0]"``.
            Conflict: ``idempotency_key`` was used before with a different spec.
            Unauthorized, Forbidden, TransportError.

        Example::

            job = client.submit(name="embed", entrypoint="python embed.py",
                                accelerators_per_worker=1, allowed_types=["RTX4090-48G"],
                                runtime_h=0.5, workers=4, idempotency_key="embed-2026-05-01")
        """
        call = _wire.submit(
            name=name, entrypoint=entrypoint, accelerators_per_worker=accelerators_per_worker,
            allowed_types=allowed_types, runtime_h=runtime_h, workers=workers,
            min_memory_gb=min_memory_gb, priority=priority, deadline=deadline,
            datasets=datasets, user_location=user_location, max_latency_ms=max_latency_ms,
            preemptible=preemptible, checkpointable=checkpointable, home_region=home_region,
            max_runtime_h=max_runtime_h, runtime_env=runtime_env, labels=labels,
            idempotency_key=idempotency_key, tenant=tenant,
        )
        return Job.from_json(self._json(call))

    def get(self, job_id: str) -> Job:
        """The job now.

        Raises:
            NotFound: no such job (or another tenant's).

        Example::

            print(client.get("j01hzy3k8q2w0000000000").state)
        """
        return Job.from_json(self._json(_wire.get(job_id)))

    def list(
        self,
        *,
        states: Iterable[JobState | str] | None = None,
        site: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
    ) -> Iterator[Job]:
        """Jobs in submission order, oldest first, fetched ``limit`` per request; the iterator
        follows the pages to the end (take the first N with ``itertools.islice``).

        Args:
            states: only jobs in these states, e.g. ``["PENDING", JobState.RUNNING]``.
            site: only jobs placed at this site.
            tenant: only this tenant's jobs (operators; a tenant sees only its own anyway).
            limit: jobs per page, 1 to 1000.

        Example::

            running = [j.id for j in client.list(states=[JobState.RUNNING], limit=500)]
        """
        after: str | None = None
        while True:
            call = _wire.list_page(states=states, site=site, tenant=tenant, after=after,
                                   limit=limit)
            items, after = _wire.page_of(self._json(call))
            for item in items:
                yield Job.from_json(item)
            if after is None:
                return

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_s: float = 1.0,
        progress: bool = False,
    ) -> Job:
        """Poll the job until it is SUCCEEDED, FAILED or CANCELLED; return its final view.

        Args:
            timeout: give up after this many seconds (None: wait as long as it takes).
            poll_s: seconds between looks.
            progress: draw a progress line on stderr (with ``rich`` if installed).

        Raises:
            Timeout: ``timeout`` passed first; ``err.job`` is the last view of the job.

        Example::

            job = client.wait(job.id, timeout=3600, progress=True)
            if job.state is not JobState.SUCCEEDED:
                print(job.reason, job.message)
        """
        give_up = None if timeout is None else time.monotonic() + timeout
        with watching(job_id, enabled=progress) as show:
            while True:
                job = self.get(job_id)
                show(job)
                if job.state.is_terminal():
                    return job
                now = time.monotonic()
                if give_up is not None and now >= give_up:
                    raise Timeout(f"job {job_id} is still {job.state.value} after {timeout} s",
                                  job)
                time.sleep(poll_s if give_up is None else max(0.0, min(poll_s, give_up - now)))

    def logs(self, job_id: str, *, follow: bool = False) -> Iterator[str]:
        """The driver log of the job's current attempt, line by line (without the newline).

        With ``follow``, keeps yielding lines until the job ends. The request is made when
        iteration starts, so errors raise from the first ``next``.

        Raises:
            Conflict: the job has no log yet (not dispatched), or its site keeps none.
            NotFound: no such job.

        Example::

            for line in client.logs(job.id, follow=True):
                print(line)
        """
        call = _wire.logs(job_id, follow=follow)
        response = self._send(call, stream=True, timeout=_stream_timeout(self.timeout, follow))
        try:
            yield from response.iter_lines()
        except httpx.HTTPError as err:
            raise TransportError(f"the log stream of {job_id} broke: {err}") from err
        finally:
            response.close()

    def cancel(self, job_id: str) -> Job:
        """Ask for the job to be cancelled: at once if it waits, after its site has stopped it
        otherwise. Returns the job (``cancel_requested`` set; ``wait`` for the end).

        Example::

            client.cancel(job.id)
            assert client.wait(job.id).state is JobState.CANCELLED
        """
        return Job.from_json(self._json(_wire.cancel(job_id)))

    def explain(self, job_id: str) -> Explanation:
        """Why the job is where it is, or why it is waiting.

        Example::

            print(client.explain(job.id).summary)
        """
        return Explanation.from_json(self._json(_wire.explain(job_id)))

    def events(self, job_id: str) -> builtins.list[JobEvent]:
        """The job's history, oldest first: submitted, placed, dispatched, running, ...

        Example::

            for e in client.events(job.id):
                print(e.at, e.kind, e.message)
        """
        data = self._json(_wire.events(job_id))
        return [JobEvent.from_json(e) for e in data]

    # ------------------------------------------------------------------ sites, plan, policy

    def sites(self) -> builtins.list[SiteInfo]:
        """Every site: up or down and why, inventory, utilisation, jobs held.

        Example::

            free = {s.name: s.available for s in client.sites() if s.up}
        """
        return [SiteInfo.from_json(s) for s in self._json(_wire.sites())]

    def plan(self) -> dict[str, Any]:
        """A summary of the last plan: placements, waits, objective, gap, cycle timings.

        Example::

            print(client.plan()["jobs_by_state"])
        """
        return dict(self._json(_wire.plan()))

    def policy(self) -> dict[str, Any]:
        """The policy in force: ``{"source": ..., "policy": YAML text}``.

        Example::

            print(client.policy()["policy"])
        """
        return dict(self._json(_wire.policy()))

    def dry_run_policy(self, text: str) -> dict[str, Any]:
        """What would move if the policy ``text`` (YAML) applied now. Changes nothing.
        Operators only.

        Returns:
            ``{"queue", "current", "proposed", "moved", "newly_placed", "newly_waiting"}``.

        Raises:
            BadRequest: the policy is invalid (``err.problems`` lists every problem).
            Forbidden: not an operator token.

        Example::

            change = client.dry_run_policy(Path("policy.yaml").read_text())
            print(len(change["moved"]), "jobs would move")
        """
        return dict(self._json(_wire.dry_run_policy(text)))

    def update_policy(self, text: str) -> dict[str, Any]:
        """Replace the policy in force with ``text`` (validated first). Operators only.

        Example::

            client.update_policy(Path("policy.yaml").read_text())
        """
        return dict(self._json(_wire.update_policy(text)))

    def health(self) -> bool:
        """True when the server answers ``/healthz`` with 200 (no token needed), False when it
        answers otherwise. Raises ``TransportError`` when it cannot be reached.

        Example::

            assert Client(url, None).health()
        """
        try:
            self._send(_wire.health())
        except ApiError:
            return False
        return True


class AsyncClient:
    """The asynchronous twin of ``Client``: the same arguments, the same methods, awaited.

    Example::

        async with AsyncClient("http://127.0.0.1:8000", token) as isthmus:
            job = await isthmus.submit(name="t", entrypoint="python t.py",
                                       accelerators_per_worker=1,
                                       allowed_types=["L40S-48G"], runtime_h=1.0)
            async for line in isthmus.logs(job.id, follow=True):
                print(line)
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        _check(retries, backoff_s)
        self.url = url.rstrip("/")
        self.retries, self.backoff_s, self.timeout = retries, backoff_s, timeout
        self._http = httpx.AsyncClient(base_url=self.url, headers=_wire.headers(token),
                                       timeout=timeout, transport=transport)

    async def close(self) -> None:
        """Close the connection pool. Example: ``await client.close()``."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    async def _send(self, call: _wire.Call, *, stream: bool = False,
                    timeout: httpx.Timeout | None = None) -> httpx.Response:
        request = self._http.build_request(
            call.method, call.path, params=call.params or None, json=call.json,
            headers=dict(call.headers), timeout=timeout or httpx.USE_CLIENT_DEFAULT,
        )
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.HTTPError as err:
                if last or not _wire.is_retryable(err):
                    raise _wire.unreachable(self.url, err, attempt + 1) from err
                await asyncio.sleep(_wire.backoff_s(self.backoff_s, attempt))
                continue
            if response.is_success:
                return response
            try:
                await response.aread()
            except httpx.HTTPError:
                pass
            finally:
                await response.aclose()
            if response.status_code in _wire.RETRY_STATUSES and not last:
                await asyncio.sleep(_wire.backoff_s(self.backoff_s, attempt))
                continue
            raise _wire.error_of(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _json(self, call: _wire.Call) -> Any:
        return _wire.json_of(await self._send(call))

    async def submit(
        self,
        *,
        name: str,
        entrypoint: str,
        accelerators_per_worker: int,
        allowed_types: Sequence[str],
        runtime_h: float | Mapping[str, float],
        workers: int = 1,
        min_memory_gb: float = 0.0,
        priority: int = 0,
        deadline: datetime | None = None,
        datasets: Iterable[str] = (),
        user_location: str | None = None,
        max_latency_ms: float | None = None,
        preemptible: bool = False,
        checkpointable: bool = False,
        home_region: str | None = None,
        max_runtime_h: float | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        tenant: str | None = None,
    ) -> Job:
        """Submit a job (see ``Client.submit`` for every argument).

        Example::

            job = await client.submit(name="t", entrypoint="python t.py",
                                      accelerators_per_worker=8, allowed_types=["H20-96G"],
                                      runtime_h=2.0)
        """
        call = _wire.submit(
            name=name, entrypoint=entrypoint, accelerators_per_worker=accelerators_per_worker,
            allowed_types=allowed_types, runtime_h=runtime_h, workers=workers,
            min_memory_gb=min_memory_gb, priority=priority, deadline=deadline,
            datasets=datasets, user_location=user_location, max_latency_ms=max_latency_ms,
            preemptible=preemptible, checkpointable=checkpointable, home_region=home_region,
            max_runtime_h=max_runtime_h, runtime_env=runtime_env, labels=labels,
            idempotency_key=idempotency_key, tenant=tenant,
        )
        return Job.from_json(await self._json(call))

    async def get(self, job_id: str) -> Job:
        """The job now. Example: ``job = await client.get(job_id)``."""
        return Job.from_json(await self._json(_wire.get(job_id)))

    async def list(
        self,
        *,
        states: Iterable[JobState | str] | None = None,
        site: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
    ) -> AsyncIterator[Job]:
        """Jobs in submission order, ``limit`` per request, following the pages to the end.

        Example::

            async for job in client.list(states=["PENDING"]):
                print(job.id)
        """
        after: str | None = None
        while True:
            call = _wire.list_page(states=states, site=site, tenant=tenant, after=after,
                                   limit=limit)
            items, after = _wire.page_of(await self._json(call))
            for item in items:
                yield Job.from_json(item)
            if after is None:
                return

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_s: float = 1.0,
        progress: bool = False,
    ) -> Job:
        """Poll until the job ends (see ``Client.wait``).

        Example::

            job = await client.wait(job.id, timeout=600)
        """
        loop = asyncio.get_running_loop()
        give_up = None if timeout is None else loop.time() + timeout
        with watching(job_id, enabled=progress) as show:
            while True:
                job = await self.get(job_id)
                show(job)
                if job.state.is_terminal():
                    return job
                now = loop.time()
                if give_up is not None and now >= give_up:
                    raise Timeout(f"job {job_id} is still {job.state.value} after {timeout} s",
                                  job)
                await asyncio.sleep(poll_s if give_up is None
                                    else max(0.0, min(poll_s, give_up - now)))

    async def logs(self, job_id: str, *, follow: bool = False) -> AsyncIterator[str]:
        """The job's log line by line, as an async iterator (see ``Client.logs``).

        Example::

            async for line in client.logs(job.id, follow=True):
                print(line)
        """
        call = _wire.logs(job_id, follow=follow)
        response = await self._send(call, stream=True,
                                    timeout=_stream_timeout(self.timeout, follow))
        try:
            async for line in response.aiter_lines():
                yield line
        except httpx.HTTPError as err:
            raise TransportError(f"the log stream of {job_id} broke: {err}") from err
        finally:
            await response.aclose()

    async def cancel(self, job_id: str) -> Job:
        """Ask for the job to be cancelled. Example: ``await client.cancel(job.id)``."""
        return Job.from_json(await self._json(_wire.cancel(job_id)))

    async def explain(self, job_id: str) -> Explanation:
        """Why here, or why waiting. Example: ``(await client.explain(job.id)).summary``."""
        return Explanation.from_json(await self._json(_wire.explain(job_id)))

    async def events(self, job_id: str) -> builtins.list[JobEvent]:
        """The job's history. Example: ``[e.kind for e in await client.events(job.id)]``."""
        return [JobEvent.from_json(e) for e in await self._json(_wire.events(job_id))]

    async def sites(self) -> builtins.list[SiteInfo]:
        """Every site. Example: ``[s.name for s in await client.sites() if s.up]``."""
        return [SiteInfo.from_json(s) for s in await self._json(_wire.sites())]

    async def plan(self) -> dict[str, Any]:
        """The last plan's summary. Example: ``(await client.plan())["placements"]``."""
        return dict(await self._json(_wire.plan()))

    async def policy(self) -> dict[str, Any]:
        """The policy in force. Example: ``(await client.policy())["policy"]``."""
        return dict(await self._json(_wire.policy()))

    async def dry_run_policy(self, text: str) -> dict[str, Any]:
        """What would move under policy ``text``. Operators only.
        Example: ``(await client.dry_run_policy(text))["moved"]``."""
        return dict(await self._json(_wire.dry_run_policy(text)))

    async def update_policy(self, text: str) -> dict[str, Any]:
        """Replace the policy in force. Operators only.
        Example: ``await client.update_policy(text)``."""
        return dict(await self._json(_wire.update_policy(text)))

    async def health(self) -> bool:
        """True when the server answers. Example: ``await client.health()``."""
        try:
            await self._send(_wire.health())
        except ApiError:
            return False
        return True


__all__ = ["AsyncClient", "Client"]
