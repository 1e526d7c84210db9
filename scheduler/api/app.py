"""``create_app(service)``: the FastAPI application.

Errors are bodies ``{"message": ..., "field": ..., "problems": [...]}`` with a 4xx status;
a request never sees a traceback. Tenants see and cancel only their own jobs (another tenant's
job is a 404, not a 403, so ids do not leak); the operator role sees everything and alone may
change the policy.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from scheduler.api.auth import Authenticator
from scheduler.api.batcher import SubmitBatcher
from scheduler.api.limits import BodyLimit
from scheduler.api.metrics import metrics_text
from scheduler.api.models import ErrorOut, JobOut, JobPage, JobSubmit, PolicyIn
from scheduler.core.adapter import LogsUnavailable
from scheduler.core.policy.load import PolicyError
from scheduler.service.config import Principal
from scheduler.service.jobs import JobRecord, JobState
from scheduler.service.service import Service
from scheduler.service.store import IdempotencyConflict, NewJob

log = logging.getLogger("isthmus.api")
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a job spec is a few KB; a policy file well under this
MAX_PAGE = 1000


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None,
                 problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.problems = status, message, field, problems


# pydantic names the member of a union (``float | dict[...]``) in an error's location; the
# user's field is the path without it.
_UNION_MEMBER = re.compile(r"^(float|int|str|bool|none|dict\[.*\]|list\[.*\]|constrained-\w+|"
                           r"function-\w+.*|tagged-union\[.*\])$")
_FIELD_IN_MESSAGE = re.compile(r"^(?P<field>[A-Za-z_][\w.\[\]-]*): (?P<message>.+)$", re.S)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in {"body", "query", "path", "header"}
             and not _UNION_MEMBER.match(str(p))]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


async def _principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    who: Principal | None = request.app.state.auth.principal(authorization)
    if who is None:
        raise ApiError(401, "missing or unknown bearer token (Authorization: Bearer TOKEN)")
    return who


async def _operator(who: Annotated[Principal, Depends(_principal)]) -> Principal:
    if not who.operator:
        raise ApiError(403, "operators only")
    return who


Who = Annotated[Principal, Depends(_principal)]
Operator = Annotated[Principal, Depends(_operator)]


def create_app(service: Service, *, batcher: SubmitBatcher | None = None) -> FastAPI:
    submits = batcher or SubmitBatcher(service)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        submits.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Isthmus",
        version="0.1.0",
        description="Cross-region compute scheduler: submit Ray jobs, see where they run "
                    "and why.",
        responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.state.service = service
    app.state.batcher = submits
    app.state.auth = Authenticator(service.config.tokens)

    # ------------------------------------------------------------------ errors

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        body = ErrorOut(message=err.message, field=err.field, problems=err.problems or [])
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(body.model_dump(), status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems: list[dict[str, str]] = []
        for e in err.errors():
            where = _field(tuple(e.get("loc", ())))
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if e.get("type") == "json_invalid":
                msg = f"invalid JSON: {e.get('ctx', {}).get('error', msg)}"
            named = _FIELD_IN_MESSAGE.match(msg)
            if named and not where:  # a whole-body check names its field in its message
                where, msg = named["field"], named["message"]
            if not any(p["field"] == where for p in problems):  # one per field (unions)
                problems.append({"field": where, "message": msg})
        first = problems[0] if problems else {"field": "", "message": "invalid request"}
        text = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        body = ErrorOut(message=text, field=first["field"] or None, problems=problems)
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse(ErrorOut(message=str(err.detail)).model_dump(),
                            status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _bug(_: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(ErrorOut(message=f"internal error: {type(err).__name__}").model_dump(),
                            status_code=500)

    def visible_job(job_id: str, who: Principal) -> JobRecord:
        job = service.store.get(job_id)
        if job is None or not who.can_see(job.tenant):
            raise ApiError(404, f"no job {job_id!r}", field="job_id")
        return job

    # ------------------------------------------------------------------ jobs

    @app.post("/v1/jobs", status_code=201, response_model=JobOut, tags=["jobs"])
    async def submit(
        body: JobSubmit,
        who: Who,
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
        tenant: Annotated[str | None, Query(max_length=63)] = None,
    ) -> Response:
        """Submit a job. With an ``Idempotency-Key`` header a retried request returns the job
        the first one created (200) instead of creating another."""
        if who.operator:
            if tenant is None:
                raise ApiError(422, "an operator submits on behalf of a tenant: ?tenant=NAME",
                               field="tenant")
            owner = tenant
        else:
            if tenant is not None and tenant != who.tenant:
                raise ApiError(403, f"this token cannot submit for tenant {tenant!r}")
            assert who.tenant is not None
            owner = who.tenant
        spec = body.to_spec()
        problems = service.check_spec(spec)
        if problems:
            raise ApiError(422, f"{problems[0].field}: {problems[0].message}",
                           field=problems[0].field,
                           problems=[{"field": p.field, "message": p.message} for p in problems])
        try:
            result = await submits.submit(NewJob(owner, spec, idempotency_key))
        except IdempotencyConflict as err:
            raise ApiError(409, str(err), field="Idempotency-Key") from None
        # Serialized here, once (the hot path: FastAPI would validate the model again).
        return Response(JobOut.of(result.job).model_dump_json(),
                        status_code=201 if result.created else 200,
                        media_type="application/json")

    @app.get("/v1/jobs", response_model=JobPage, tags=["jobs"])
    def list_jobs(
        who: Who,
        state: Annotated[list[JobState] | None, Query()] = None,
        site: Annotated[str | None, Query(max_length=63)] = None,
        tenant: Annotated[str | None, Query(max_length=63)] = None,
        after: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> JobPage:
        """Jobs in submission order, a page at a time (``after`` = the last id seen)."""
        if not who.operator:
            if tenant is not None and tenant != who.tenant:
                raise ApiError(403, f"this token cannot list tenant {tenant!r}")
            tenant = who.tenant
        jobs = service.store.list_jobs(tenant=tenant, states=state, site=site, after=after,
                                       limit=limit + 1)
        more = len(jobs) > limit
        jobs = jobs[:limit]
        return JobPage(items=[JobOut.of(j) for j in jobs],
                       next=jobs[-1].id if more and jobs else None)

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def get_job(job_id: str, who: Who) -> JobOut:
        return JobOut.of(visible_job(job_id, who))

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, status_code=202, tags=["jobs"])
    def cancel(job_id: str, who: Who) -> JobOut:
        """Cancel a job: at once if it waits; an attempt at a site is stopped there first."""
        visible_job(job_id, who)
        job = service.cancel(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}", field="job_id")
        return JobOut.of(job)

    @app.get("/v1/jobs/{job_id}/explain", tags=["jobs"])
    def explain(job_id: str, who: Who) -> dict[str, Any]:
        """Why here, or why waiting: from the last plan's explanation of the job."""
        return service.explain(visible_job(job_id, who))

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"])
    def events(job_id: str, who: Who) -> list[dict[str, Any]]:
        visible_job(job_id, who)
        return [{"at": e.at, "kind": e.kind, "message": e.message}
                for e in service.store.events(job_id)]

    @app.get("/v1/jobs/{job_id}/logs", tags=["jobs"], response_class=PlainTextResponse)
    def logs(job_id: str, who: Who, follow: bool = False) -> Response:
        """The driver log of the job's current attempt, from its site; ``follow`` streams it
        until the job ends."""
        job = visible_job(job_id, who)
        try:
            chunks = service.logs(job, follow=follow)
            first = next(chunks, None)
        except LogsUnavailable as err:
            raise ApiError(409, f"no logs for {job_id}: {err}") from None

        def stream() -> Iterator[str]:
            if first is not None:
                yield first
            try:
                yield from chunks
            except LogsUnavailable as err:
                yield f"\n[isthmus: log ended: {err}]\n"

        return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")

    # ------------------------------------------------------------------ sites, plan, policy

    @app.get("/v1/sites", tags=["sites"])
    def sites(_: Who) -> list[dict[str, Any]]:
        """Every site: up or down and why, inventory, utilisation, jobs held."""
        return service.site_views()

    @app.get("/v1/plan", tags=["plan"])
    def plan(_: Who) -> dict[str, Any]:
        """The last plan: placements, waits, objective, gap, and the last cycle's phases."""
        return service.plan_summary()

    @app.get("/v1/policy", tags=["policy"])
    def get_policy(_: Who) -> dict[str, Any]:
        version = service.policy.version
        return {"source": version.source, "policy": version.text}

    @app.post("/v1/policy/dry-run", tags=["policy"])
    async def dry_run(body: PolicyIn, _: Operator) -> dict[str, Any]:
        """What would move if this policy applied now. Changes nothing."""
        try:
            return await asyncio.to_thread(service.dry_run, body.policy)
        except PolicyError as err:
            raise ApiError(422, str(err), field="policy",
                           problems=[{"field": "policy", "message": str(p)}
                                     for p in err.problems]) from None

    @app.put("/v1/policy", tags=["policy"])
    def put_policy(body: PolicyIn, _: Operator) -> dict[str, Any]:
        """Replace the policy in force (validated first; persisted)."""
        try:
            version = service.update_policy(body.policy)
        except PolicyError as err:
            raise ApiError(422, str(err), field="policy",
                           problems=[{"field": "policy", "message": str(p)}
                                     for p in err.problems]) from None
        return {"source": version.source, "policy": version.text}

    # ------------------------------------------------------------------ operations

    @app.get("/healthz", tags=["operations"], include_in_schema=True)
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """Readiness: the store answers and the control loop has completed a cycle (or this
        replica is a follower, which serves reads)."""
        try:
            service.store.count_by_state()
        except Exception as err:
            return JSONResponse({"status": "not ready", "reason": f"store: {err}"}, 503)
        if not service.ready:
            return JSONResponse({"status": "not ready", "reason": "first cycle not done"}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> Response:
        body, content_type = metrics_text(service, submits)
        return Response(body, media_type=content_type)

    return app


__all__ = ["ApiError", "create_app"]
