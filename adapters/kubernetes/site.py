"""``KubernetesSite``: a Kubernetes cluster running KubeRay, driven with the official client.

    site = KubernetesSite.from_config("wulanchabu", {"kubeconfig": "~/.kube/wulanchabu"})
    site.inventory()              # from the watch-fed cache (adapters.kubernetes.inventory)
    site.submit(dispatch)         # a RayJob in the tenant's namespace; idempotent
    site.status(dispatch.name)    # DispatchStatus mapped from the RayJob's status
    site.suspend(dispatch.name); site.resume(dispatch.name)
    "".join(site.logs(dispatch.name))
    site.cancel(dispatch.name)
    site.close()

Errors. Every public method raises only the core's errors: ``SiteUnreachable`` when the
apiserver gave no usable answer within the retry budget (connection refused, timeouts, 5xx,
429 — see ``adapters.kubernetes.retry``), ``DispatchConflict`` when a RayJob of that name
belongs to another job, ``QuotaExhausted`` (an ``AdapterError``) when a ResourceQuota of the
tenant's namespace refuses the RayJob, ``AdapterError`` for any other refusal (401, 403, 422
...) with the apiserver's message, and ``LogsUnavailable`` from ``logs``.

Idempotent submit. The RayJob's name is the dispatch name. A ``409 AlreadyExists`` on create —
a retry after a lost response, a restart — reads the existing object: the same
``isthmus.io/job`` label means already dispatched (nothing to do), another means conflict.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from adapters.kubernetes.config import load_kubeconfig, parse_config
from adapters.kubernetes.inventory import InventoryCache
from adapters.kubernetes.manifest import (
    GROUP,
    JOB_ID_ANNOTATION,
    JOB_LABEL,
    MANAGED_LABEL,
    MANAGER,
    NAMESPACE_PREFIX,
    PLURAL,
    VERSION,
    label_value,
    rayjob_manifest,
)
from adapters.kubernetes.retry import (
    Backoff,
    api_message,
    describe,
    is_transient,
    status_of,
    with_retries,
)
from scheduler.core.adapter import (
    AdapterError,
    Dispatch,
    DispatchConflict,
    DispatchState,
    DispatchStatus,
    Health,
    LogsUnavailable,
)
from scheduler.core.model import AcceleratorPool

T = TypeVar("T")

HEALTH_TIMEOUT_S = 5.0
REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for every call but watches and logs
DEFAULT_BACKOFF = Backoff(attempts=8, first_s=0.2, max_s=3.0, budget_s=30.0)
SUBMITTER_CONTAINER = "ray-job-submitter"  # KubeRay's name for the submitter Job's container
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set by the Job controller on a Job's pods
MERGE_PATCH = "application/merge-patch+json"
TOKEN_REFRESH_S = 5.0
# Unknown or duplicate fields make the apiserver refuse the RayJob instead of dropping them
# silently: a field the site's KubeRay CRD does not know (an older version) must not vanish.
STRICT = "Strict"
PENDING_DEPLOYMENT = frozenset(
    {"", "New", "Initializing", "Waiting", "Retrying", "Suspending", "Suspended"}
)

# The client's own annotations are partial and its objects Optional everywhere; this module
# reads them defensively and treats them as Any at this boundary.
_load_kube_config: Any = config.load_kube_config
_load_kube_config_from_dict: Any = config.load_kube_config_from_dict


class QuotaExhausted(AdapterError):
    """A ResourceQuota of the tenant's namespace at the site refuses the dispatch for now.

    Not a fault of the site: the job should wait (with this message as the reason) and be
    placed again when the quota has room, here or elsewhere.
    """


def map_status(obj: Mapping[str, Any]) -> DispatchStatus:
    """A RayJob's ``status`` (jobDeploymentStatus / jobStatus) as a ``DispatchStatus``."""
    status = obj.get("status") or {}
    deployment = status.get("jobDeploymentStatus", "")
    job = status.get("jobStatus", "")
    reason = status.get("reason", "") or deployment
    message = status.get("message", "")
    if deployment == "Complete":
        state = {
            "SUCCEEDED": DispatchState.SUCCEEDED,
            "FAILED": DispatchState.FAILED,
            "STOPPED": DispatchState.STOPPED,
        }.get(job, DispatchState.UNKNOWN)
    elif deployment in {"Failed", "ValidationFailed"}:
        state = DispatchState.FAILED
    elif deployment == "Running" or job == "RUNNING":
        state = DispatchState.RUNNING
    elif deployment in PENDING_DEPLOYMENT:
        state = DispatchState.PENDING
    else:
        state = DispatchState.UNKNOWN
        message = message or f"unmapped jobDeploymentStatus {deployment!r}, jobStatus {job!r}"
    return DispatchStatus(state, reason, message)


def _configuration(
    kubeconfig: str | Path | Mapping[str, Any], context: str | None, max_connections: int
) -> client.Configuration:
    configuration = client.Configuration()
    try:
        if isinstance(kubeconfig, Mapping):
            _load_kube_config_from_dict(
                config_dict=dict(kubeconfig),
                context=context,
                client_configuration=configuration,
            )
        else:
            _load_kube_config(
                config_file=str(kubeconfig), context=context, client_configuration=configuration
            )
    except ConfigException as err:
        key = "context" if context and "context" in str(err).lower() else "kubeconfig"
        raise ValueError(f"{key}: {err}") from err
    # Our retries (adapters.kubernetes.retry) decide; urllib3 must not retry on its own.
    configuration.retries = False
    configuration.connection_pool_maxsize = max_connections
    hook = configuration.refresh_api_key_hook
    if hook is not None:
        configuration.refresh_api_key_hook = _at_most_every(TOKEN_REFRESH_S, hook)
    return configuration


def _at_most_every(seconds: float, hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """``hook`` run at most once per ``seconds``.

    The client re-reads the kubeconfig's credentials (re-running an exec plugin when its
    token has expired) before *every* request: a fifth of our CPU per RayJob in a profile.
    Expiring tokens live minutes, so once every few seconds is as good.
    """
    lock = threading.Lock()
    last = [float("-inf")]

    def refresh(configuration: Any) -> None:
        with lock:
            now = time.monotonic()
            if now - last[0] < seconds:
                return
            last[0] = now
        hook(configuration)

    return refresh


def _started(pod: Any) -> str | None:
    """The name of the pod's submitter container if it has started (running or ended)."""
    names = [c.name for c in pod.spec.containers or ()]
    container = SUBMITTER_CONTAINER if SUBMITTER_CONTAINER in names else names[0]
    for status in pod.status.container_statuses or ():
        if status.name == container and (status.state.running or status.state.terminated):
            return container
    return None


class KubernetesSite:
    """A ``SiteAdapter`` (with logs and preemption) for one Kubernetes + KubeRay cluster."""

    def __init__(
        self,
        name: str,
        kubeconfig: str | Path | Mapping[str, Any],
        *,
        context: str | None = None,
        prices: Mapping[str, float] | None = None,
        image: str | None = None,
        namespace_prefix: str = NAMESPACE_PREFIX,
        tolerations: Sequence[Mapping[str, Any]] = (),
        backoff: Backoff = DEFAULT_BACKOFF,
        sync_timeout_s: float = 10.0,
        max_connections: int = 32,
    ) -> None:
        """Read the kubeconfig (a file or its content); nothing connects until first use."""
        self.name = name
        configuration = _configuration(kubeconfig, context, max_connections)
        self._api: Any = client.ApiClient(configuration)
        self._core: Any = client.CoreV1Api(self._api)
        self._custom: Any = client.CustomObjectsApi(self._api)
        self._manifest_options: dict[str, Any] = {
            "namespace_prefix": namespace_prefix,
            "tolerations": tuple(tolerations),
        }
        if image is not None:
            self._manifest_options["image"] = image
        self._backoff = backoff
        self._sync_timeout_s = sync_timeout_s
        self._cache = InventoryCache(name, configuration, prices=prices)
        self._lock = threading.Lock()
        self._namespaces: dict[str, str] = {}  # dispatch name -> namespace, a cache only
        self._ready_namespaces: set[str] = set()  # created (or found) by this process

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> KubernetesSite:
        """The adapter for the site ``name`` from its section of the service configuration.

        See ``adapters.kubernetes.config`` for the keys. Raises ``ValueError`` naming the key on
        bad input, ``SiteUnreachable`` / ``AdapterError`` when the hub holding
        ``kubeconfig_secret`` cannot be read.
        """
        settings = parse_config(config)
        try:
            kubeconfig = with_retries(
                f"site {name}: read kubeconfig_secret",
                lambda: load_kubeconfig(settings),
                DEFAULT_BACKOFF,
            )
        except ApiException as err:
            raise AdapterError(f"site {name}: read kubeconfig_secret: {describe(err)}") from err
        return cls(
            name,
            kubeconfig,
            context=settings.context,
            prices=settings.prices,
            image=settings.image,
            namespace_prefix=settings.namespace_prefix,
            tolerations=settings.tolerations,
        )

    def close(self) -> None:
        self._cache.stop()
        self._api.close()

    # -- calling the apiserver -------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` with the retry policy; non-transient API errors stay ``ApiException``."""
        return with_retries(f"site {self.name}: {what}", call, self._backoff)

    def _refused(self, what: str, err: ApiException) -> AdapterError:
        return AdapterError(f"site {self.name}: {what}: {describe(err)}")

    # -- inventory -------------------------------------------------------------------------

    def inventory(self) -> tuple[AcceleratorPool, ...]:
        """From memory, kept current by watches; the first call starts them and waits for the
        first list (``SiteUnreachable`` if it does not come within ``sync_timeout_s``)."""
        return self._cache.pools(self._sync_timeout_s)

    @property
    def inventory_cache(self) -> InventoryCache:
        return self._cache

    # -- dispatch --------------------------------------------------------------------------

    def _ensure_namespace(self, namespace: str) -> None:
        with self._lock:
            if namespace in self._ready_namespaces:
                return
        body = {"metadata": {"name": namespace, "labels": {MANAGED_LABEL: MANAGER}}}
        try:
            self._call(
                f"create namespace {namespace}",
                lambda: self._core.create_namespace(body, _request_timeout=REQUEST_TIMEOUT),
            )
        except ApiException as err:
            # 409: it exists. 403: we may not create namespaces here — the operator creates the
            # tenants' namespaces; if this one is missing, creating the RayJob says so (404).
            if err.status not in (409, 403):
                raise self._refused(f"create namespace {namespace}", err) from err
        with self._lock:
            self._ready_namespaces.add(namespace)

    def submit(self, dispatch: Dispatch) -> None:
        """Create the dispatch's RayJob; already there for this job: nothing to do."""
        body = rayjob_manifest(dispatch, **self._manifest_options)
        namespace = body["metadata"]["namespace"]
        where = f"RayJob {namespace}/{dispatch.name}"
        self._ensure_namespace(namespace)

        def create() -> None:
            self._custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                body,
                field_validation=STRICT,
                _request_timeout=REQUEST_TIMEOUT,
            )

        try:
            try:
                self._call(f"create {where}", create)
            except ApiException as err:
                if err.status != 404:
                    raise
                # The namespace went away since we saw it (or the CRD is missing): once more.
                with self._lock:
                    self._ready_namespaces.discard(namespace)
                self._ensure_namespace(namespace)
                self._call(f"create {where}", create)
        except ApiException as err:
            if err.status == 409:
                self._adopt(dispatch, namespace, where)
            elif err.status == 403 and "exceeded quota" in api_message(err):
                raise QuotaExhausted(
                    f"site {self.name}: quota exhausted in namespace {namespace}: "
                    f"{api_message(err)}"
                ) from err
            else:
                raise self._refused(f"create {where}", err) from err
        with self._lock:
            self._namespaces[dispatch.name] = namespace

    def _adopt(self, dispatch: Dispatch, namespace: str, where: str) -> None:
        """A RayJob of this name exists: ours (a retry) or another job's (a conflict)."""
        try:
            existing = self._call(
                f"read {where}",
                lambda: self._custom.get_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    dispatch.name,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except ApiException as err:
            raise self._refused(f"read {where} after 409 AlreadyExists", err) from err
        meta = existing.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(JOB_LABEL)
        owner_id = (meta.get("annotations") or {}).get(JOB_ID_ANNOTATION) or owner
        if owner != label_value(dispatch.job.id) or owner_id != dispatch.job.id:
            raise DispatchConflict(
                f"site {self.name}: {where} exists for job {owner_id!r}, not {dispatch.job.id!r}"
            )
        if meta.get("deletionTimestamp"):
            raise AdapterError(f"site {self.name}: {where} is being deleted; submit again later")

    def _find(self, dispatch_name: str) -> dict[str, Any] | None:
        """The RayJob named ``dispatch_name`` in any tenant namespace, or None."""
        with self._lock:
            namespace = self._namespaces.get(dispatch_name)
        if namespace is not None:
            try:
                found: dict[str, Any] = self._call(
                    f"read RayJob {namespace}/{dispatch_name}",
                    lambda: self._custom.get_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        namespace,
                        PLURAL,
                        dispatch_name,
                        _request_timeout=REQUEST_TIMEOUT,
                    ),
                )
                return found
            except ApiException as err:
                if err.status != 404:
                    raise self._refused(f"read RayJob {namespace}/{dispatch_name}", err) from err
        try:
            listed = self._call(
                f"find RayJob {dispatch_name}",
                lambda: self._custom.list_cluster_custom_object(
                    GROUP,
                    VERSION,
                    PLURAL,
                    label_selector=f"{MANAGED_LABEL}={MANAGER}",
                    field_selector=f"metadata.name={dispatch_name}",
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except ApiException as err:
            raise self._refused(f"find RayJob {dispatch_name}", err) from err
        items: list[dict[str, Any]] = listed.get("items", [])
        with self._lock:
            if not items:
                self._namespaces.pop(dispatch_name, None)
                return None
            self._namespaces[dispatch_name] = items[0]["metadata"]["namespace"]
        return items[0]

    def status(self, dispatch_name: str) -> DispatchStatus:
        obj = self._find(dispatch_name)
        if obj is None:
            return DispatchStatus(DispatchState.UNKNOWN, "NotFound", f"no RayJob {dispatch_name}")
        return map_status(obj)

    def cancel(self, dispatch_name: str) -> None:
        """Delete the RayJob (KubeRay's owner references take its RayCluster and pods)."""
        obj = self._find(dispatch_name)
        if obj is None:
            return
        namespace = obj["metadata"]["namespace"]
        try:
            self._call(
                f"delete RayJob {namespace}/{dispatch_name}",
                lambda: self._custom.delete_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    dispatch_name,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except ApiException as err:
            if err.status != 404:
                raise self._refused(f"delete RayJob {namespace}/{dispatch_name}", err) from err
        with self._lock:
            self._namespaces.pop(dispatch_name, None)

    # -- preemption (SupportsPreemption) ---------------------------------------------------

    def _set_suspend(self, dispatch_name: str, suspend: bool) -> None:
        obj = self._find(dispatch_name)
        verb = "suspend" if suspend else "resume"
        if obj is None:
            raise AdapterError(f"site {self.name}: cannot {verb} {dispatch_name}: no such RayJob")
        namespace = obj["metadata"]["namespace"]
        try:
            self._call(
                f"{verb} RayJob {namespace}/{dispatch_name}",
                lambda: self._custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    dispatch_name,
                    {"spec": {"suspend": suspend}},
                    _content_type=MERGE_PATCH,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )
        except ApiException as err:
            raise self._refused(f"{verb} RayJob {namespace}/{dispatch_name}", err) from err

    def suspend(self, dispatch_name: str) -> None:
        """``spec.suspend: true``: KubeRay deletes the RayCluster (freeing the accelerators) and
        reports Suspended; the dispatch stays, PENDING. Idempotent."""
        self._set_suspend(dispatch_name, True)

    def resume(self, dispatch_name: str) -> None:
        """``spec.suspend: false``: KubeRay creates the RayCluster again. Idempotent."""
        self._set_suspend(dispatch_name, False)

    # -- logs (SupportsLogs) ---------------------------------------------------------------

    def logs(self, dispatch_name: str, *, follow: bool = False) -> Iterator[str]:
        """The driver log: the output of KubeRay's submitter pod (``K8sJobMode``).

        Raises ``LogsUnavailable`` at once, with the reason, when there is nothing to read: no
        such RayJob, another submission mode, no submitter pod yet, a pod not started, or the
        site unable to serve the log (e.g. the node's kubelet unreachable).
        """
        obj = self._find(dispatch_name)
        if obj is None:
            raise LogsUnavailable(f"no RayJob {dispatch_name} at site {self.name}")
        namespace = obj["metadata"]["namespace"]
        where = f"RayJob {namespace}/{dispatch_name}"
        mode = (obj.get("spec") or {}).get("submissionMode") or "K8sJobMode"
        if mode != "K8sJobMode":
            raise LogsUnavailable(f"{where} runs in {mode}: there is no submitter pod to read")
        try:
            pods = self._call(
                f"list the submitter pods of {where}",
                lambda: self._core.list_namespaced_pod(
                    namespace,
                    label_selector=f"{JOB_NAME_LABEL}={dispatch_name}",
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            ).items
        except ApiException as err:
            raise LogsUnavailable(
                f"cannot list the submitter pods of {where}: {describe(err)}"
            ) from err
        if not pods:
            deployment = (obj.get("status") or {}).get("jobDeploymentStatus") or "New"
            raise LogsUnavailable(
                f"no submitter pod found for {where} (jobDeploymentStatus {deployment}: "
                "KubeRay creates it once the RayCluster is ready)"
            )
        # The newest pod that has started (a Job's retry may be newer but not yet running).
        pod = max(pods, key=lambda p: (_started(p) is not None, p.metadata.creation_timestamp))
        container = _started(pod)
        if container is None:
            statuses = pod.status.container_statuses or ()
            waiting = next((s.state.waiting for s in statuses if s.state.waiting), None)
            why = (waiting and waiting.reason) or pod.status.phase or "Pending"
            raise LogsUnavailable(
                f"the submitter pod {namespace}/{pod.metadata.name} of {where} has not started "
                f"({why})"
            )
        try:
            response = self._core.read_namespaced_pod_log(
                pod.metadata.name,
                namespace,
                container=container,
                follow=follow,
                _preload_content=False,
                _request_timeout=(REQUEST_TIMEOUT[0], None if follow else REQUEST_TIMEOUT[1]),
            )
        except Exception as err:
            raise LogsUnavailable(
                f"the site could not serve the log of the submitter pod "
                f"{namespace}/{pod.metadata.name}: {describe(err)}"
            ) from err
        return self._chunks(response)

    @staticmethod
    def _chunks(response: Any) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            for chunk in response.stream(4096):
                text = decoder.decode(chunk)
                if text:
                    yield text
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
        finally:
            # Closed first: a reader that stops early must not leave unread log in a pooled
            # connection.
            response.close()
            response.release_conn()

    # -- health ----------------------------------------------------------------------------

    def health(self) -> Health:
        """One authorized, cheap call, not retried: list at most one RayJob (which also proves
        the CRD is installed). The reason starts with what went wrong: ``unauthorized (401):
        ...``, ``forbidden (403): ...``, ``unreachable: ...``."""
        try:
            self._custom.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, limit=1, _request_timeout=HEALTH_TIMEOUT_S
            )
        except Exception as err:
            if status_of(err) is None and not is_transient(err):
                raise
            return Health(False, describe(err))
        return Health(True)


__all__ = ["KubernetesSite", "QuotaExhausted", "map_status"]
