"""One Kubernetes site on loopback: etcd, kube-apiserver, controller-manager, scheduler, kwok.

    site = start_site("site-a", DEFAULT_INVENTORY)
    ...  # site.kubeconfig, site.server, site.token
    site.stop()

Every process runs from the binaries tools/testbed/build.py put under
``versions.bin_dir()``, listens on free 127.0.0.1 ports, keeps its data and log under
``site.workdir`` (a temporary directory unless one is given) and is stopped by ``stop()``.
Several sites are simply several calls: they share nothing but the binaries.

Startup phases, in order: keys and tokens, etcd, kube-apiserver (wait for /readyz), the KubeRay
CRDs from the Go module cache (wait for Established), controller-manager, scheduler, kwok with
its Stage files from the module cache, then the inventory's fake GPU nodes (wait for Ready).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scheduler.testbed import versions

ADMIN_USER = "isthmus-admin"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
ACCELERATOR_LABEL = "isthmus.io/accelerator"
SITE_LABEL = "isthmus.io/site"
KUBERAY_CRDS = ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml")
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
# Stage files shipped in the kwok module: nodes become Ready and keep a Lease; pods become
# Ready once bound, Job pods complete, deleted pods go away.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


NODE_LEASE_S = 40  # a kubelet's default


class TestbedError(RuntimeError):
    """The testbed could not be built or started; the message says which part and why."""


@dataclass(frozen=True)
class NodePool:
    """``count`` identical fake nodes carrying ``per_node`` units of ``resource``."""

    count: int
    product: str
    resource: str = "nvidia.com/gpu"
    per_node: int = 8
    cpu: str = "128"
    memory: str = "1024Gi"
    pods: str = "110"
    labels: tuple[tuple[str, str], ...] = ()
    # (key, value, effect) taints, e.g. ("nvidia.com/gpu", "present", "NoSchedule")
    taints: tuple[tuple[str, str, str], ...] = ()

    @property
    def prefix(self) -> str:
        return self.product.lower().replace(".", "-").replace("_", "-")


Inventory = Sequence[NodePool]

DEFAULT_INVENTORY: tuple[NodePool, ...] = (
    NodePool(4, "RTX4090-48G", labels=(("nvidia.com/gpu.product", "NVIDIA-GeForce-RTX-4090-48G"),)),
    NodePool(2, "H20-96G", labels=(("nvidia.com/gpu.product", "NVIDIA-H20"),)),
    NodePool(
        2,
        "Ascend910B-64G",
        resource="huawei.com/Ascend910",
        labels=(("accelerator", "huawei-Ascend910"),),
    ),
)


def node_manifests(site: str, inventory: Inventory) -> list[dict[str, Any]]:
    """The Node objects for ``inventory``, annotated so that kwok manages them."""
    nodes = []
    for pool in inventory:
        for i in range(pool.count):
            name = f"{site}-{pool.prefix}-{i}"
            resources = {
                "cpu": pool.cpu,
                "memory": pool.memory,
                "pods": pool.pods,
                pool.resource: str(pool.per_node),
            }
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                SITE_LABEL: site,
                ACCELERATOR_LABEL: pool.product,
                **dict(pool.labels),
            }
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": {
                            KWOK_ANNOTATION: "fake",
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                    },
                    "spec": {
                        "taints": [
                            {"key": key, "value": value, "effect": effect}
                            for key, value, effect in pool.taints
                        ]
                    }
                    if pool.taints
                    else {},
                    "status": {"capacity": resources, "allocatable": resources},
                }
            )
    return nodes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    pid: int
    argv0: str
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    argv: tuple[str, ...] = ()  # how it was started, so that it can be started again
    env: dict[str, str] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        # Guard against a recycled pid: it must still be our binary.
        return cmdline.split(b"\0", 1)[0] == self.argv0.encode()

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        """SIGTERM (SIGKILL with ``kill``, as a crash would) to its group; SIGKILL if it lingers."""
        if not self.alive():
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.05)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# The controllers of a site: what ``Site.restart_exited`` may start again (etcd and
# kube-apiserver are stopped and started by tests on purpose).
CONTROLLERS = ("kube-controller-manager", "kube-scheduler", "kwok")


@dataclass
class Site:
    """A running site. ``stop()`` ends every process it started and is idempotent."""

    name: str
    workdir: Path
    server: str
    token: str
    kubeconfig: Path
    etcd_url: str
    processes: list[Process] = field(default_factory=list)
    owns_workdir: bool = False

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def process(self, name: str) -> Process:
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise TestbedError(f"site {self.name} has no process {name!r}")

    def restart_exited(self, names: tuple[str, ...] = CONTROLLERS) -> dict[str, str]:
        """Start again, with the same flags, each of ``names`` that has exited — as the kubelet
        restarts a crashed static pod of a real control plane. Returns, by name, the last
        lines of the log of each one restarted (its log file is appended to, so the lines
        before the restart say why it stopped)."""
        restarted: dict[str, str] = {}
        for i, proc in enumerate(self.processes):
            if proc.name not in names or proc.alive() or not proc.argv:
                continue
            restarted[proc.name] = proc.tail()
            proc.stop()  # reap it
            self.processes[i] = _spawn(proc.name, list(proc.argv), self.workdir, proc.env)
        return restarted

    def stop_apiserver(self, *, kill: bool = True) -> None:
        """Stop only kube-apiserver (SIGKILL by default, as a crash): etcd and the rest stay."""
        self.process("kube-apiserver").stop(kill=kill)

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start kube-apiserver again, same flags and port, and wait for /readyz."""
        old = self.process("kube-apiserver")
        if old.alive():
            return
        new = _spawn(old.name, list(old.argv), self.workdir, old.env)
        self.processes[self.processes.index(old)] = new
        api = self.api()
        _wait(
            "kube-apiserver /readyz after a restart",
            lambda: api.request("GET", "/readyz") == "ok",
            [new],
            timeout,
        )

    def start_kuberay_operator(
        self, timeout: float = 120.0, *, watch_namespaces: Sequence[str] = ()
    ) -> None:
        """Run the real KubeRay operator against this site (it also needs the RayService CRD).

        Not started by default. Under kwok it creates each RayJob's RayCluster and pods, which
        kube-scheduler places on the fake nodes, but no Ray process ever runs, so the job's own
        status never reaches SUCCEEDED; tests write the status themselves for that.
        ``watch_namespaces`` limits it to those namespaces (default: all), so that tests which
        write RayJob status themselves elsewhere are left alone.
        """
        _install_crds(self.api(), kuberay_crd_paths(("ray.io_rayservices.yaml",)), timeout)
        probe = free_port()
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        argv = [
            _binary("ray-operator"),
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{probe}",
            "--enable-leader-election=false",
            "--log-stdout-encoder=console",
        ]
        if watch_namespaces:
            argv.append(f"--watch-namespace={','.join(watch_namespaces)}")
        proc = _spawn("ray-operator", argv, self.workdir, env)
        self.processes.append(proc)

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{probe}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)

        _wait("the KubeRay operator /readyz", ready, [proc], timeout)

    def alive(self) -> dict[str, bool]:
        return {p.name: p.alive() for p in self.processes}

    def api(self) -> Api:
        return Api(self.server, self.token)

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workdir": str(self.workdir),
            "server": self.server,
            "token": self.token,
            "kubeconfig": str(self.kubeconfig),
            "etcd_url": self.etcd_url,
            "owns_workdir": self.owns_workdir,
            "processes": [
                {"name": p.name, "pid": p.pid, "argv0": p.argv0, "log": str(p.log)}
                for p in self.processes
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Site:
        procs = [
            Process(p["name"], int(p["pid"]), p["argv0"], Path(p["log"]))
            for p in state["processes"]
        ]
        return cls(
            name=state["name"],
            workdir=Path(state["workdir"]),
            server=state["server"],
            token=state["token"],
            kubeconfig=Path(state["kubeconfig"]),
            etcd_url=state["etcd_url"],
            processes=procs,
            owns_workdir=bool(state.get("owns_workdir", False)),
        )


class Api:
    """Just enough of the Kubernetes REST API to set a site up (JSON over HTTPS, a token)."""

    def __init__(self, server: str, token: str) -> None:
        self.server = server
        self.token = token
        self._tls = ssl.create_default_context()
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE  # the testbed's self-signed serving cert

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout, context=self._tls) as resp:
            raw = resp.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def create(self, path: str, body: Any) -> Any:
        try:
            return self.request("POST", path, body)
        except urllib.error.HTTPError as err:
            if err.code == 409:  # already there: a restart of an existing site
                return None
            raise TestbedError(
                f"POST {path}: {err.code} {err.read().decode(errors='replace')}"
            ) from err


def _wait(what: str, check: Any, procs: Iterable[Process], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive():
                raise TestbedError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, KeyError) as err:
            last = err
        time.sleep(0.2)
    raise TestbedError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


def _binary(name: str) -> str:
    path = versions.bin_dir() / name
    if not os.access(path, os.X_OK):
        raise TestbedError(
            f"{path} is missing: build the testbed with `make testbed` "
            "(or `python tools/testbed/build.py`)"
        )
    return str(path)


def _spawn(name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> Process:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() signals the group
        )
    return Process(name, popen.pid, argv[0], log, popen, tuple(argv), env)


def _openssl(*args: str) -> None:
    if shutil.which("openssl") is None:
        raise TestbedError("openssl is needed to generate the service-account key")
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _write_kubeconfig(path: Path, name: str, server: str, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": ADMIN_USER}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def kuberay_crd_paths(names: Sequence[str] = KUBERAY_CRDS) -> list[Path]:
    base = versions.module_dir(versions.KUBERAY_MODULE) / "config" / "crd" / "bases"
    paths = [base / name for name in names]
    for path in paths:
        if not path.exists():
            raise TestbedError(f"{path} is missing: the kuberay module is not in the module cache")
    return paths


def kwok_stage_paths() -> list[Path]:
    base = versions.module_dir(versions.KWOK_MODULE)
    paths = [base / rel for rel in KWOK_STAGES]
    for path in paths:
        if not path.exists():
            raise TestbedError(f"{path} is missing: the kwok module is not in the module cache")
    return paths


def _install_crds(
    api: Api, paths: Sequence[Path], timeout: float, procs: Sequence[Process] = ()
) -> None:
    """Create the CRDs in ``paths`` and wait until the apiserver serves them (Established)."""
    names = []
    for path in paths:
        crd = yaml.safe_load(path.read_text())
        names.append(crd["metadata"]["name"])
        api.create(CRD_PATH, crd)

    def established() -> bool:
        for name in names:
            crd = api.request("GET", f"{CRD_PATH}/{name}")
            conditions = (crd.get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return False
        return True

    _wait(f"CRDs {', '.join(names)} Established", established, procs, timeout)


def start_site(
    name: str,
    inventory: Inventory = DEFAULT_INVENTORY,
    *,
    workdir: Path | None = None,
    timeout: float = 120.0,
    node_lease_s: int = NODE_LEASE_S,
) -> Site:
    """Start one site and return when its nodes are Ready; on failure nothing is left running.

    ``node_lease_s`` is the simulated kubelets' lease: kwok renews every node's Lease each
    quarter of it, so with thousands of nodes a longer lease (the controller-manager's grace
    period follows it) keeps the heartbeats from eating a small machine's control plane.
    """
    owns = workdir is None
    root = Path(tempfile.mkdtemp(prefix=f"isthmus-{name}-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    site = Site(name, root, "", "", root / "kubeconfig", "", owns_workdir=owns)
    try:
        _start(site, inventory, timeout, node_lease_s)
    except BaseException:
        site.stop()
        raise
    return site


def _start(site: Site, inventory: Inventory, timeout: float, node_lease_s: int) -> None:
    root = site.workdir
    # 1. Credentials: an admin token and the service-account signing key.
    site.token = secrets.token_hex(24)
    tokens = root / "tokens.csv"
    tokens.write_text(f'{site.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    sa_key = root / "sa.key"
    _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(sa_key)
    )

    # 2. etcd.
    client, peer = free_port(), free_port()
    site.etcd_url = f"http://127.0.0.1:{client}"
    etcd = _spawn(
        "etcd",
        [
            _binary("etcd"),
            f"--name={site.name}",
            f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls={site.etcd_url}",
            f"--advertise-client-urls={site.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster={site.name}=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        root,
    )
    site.processes.append(etcd)

    def etcd_healthy() -> bool:
        with urllib.request.urlopen(site.etcd_url + "/health", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")

    _wait("etcd /health", etcd_healthy, [etcd], timeout)

    # 3. kube-apiserver, with the flags controller-runtime's envtest passes.
    port = free_port()
    site.server = f"https://127.0.0.1:{port}"
    apiserver = _spawn(
        "kube-apiserver",
        [
            _binary("kube-apiserver"),
            f"--etcd-servers={site.etcd_url}",
            f"--cert-dir={root / 'pki'}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer={site.server}",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            f"--token-auth-file={tokens}",
        ],
        root,
    )
    site.processes.append(apiserver)
    api = site.api()
    _wait(
        "kube-apiserver /readyz",
        lambda: api.request("GET", "/readyz") == "ok",
        [apiserver],
        timeout,
    )
    _write_kubeconfig(site.kubeconfig, site.name, site.server, site.token)

    # 4. The KubeRay CRDs, read from the kuberay module in the Go module cache.
    _install_crds(api, kuberay_crd_paths(), timeout, [apiserver])

    # 5. controller-manager and scheduler, on the admin kubeconfig.
    site.processes.append(
        _spawn(
            "kube-controller-manager",
            [
                _binary("kube-controller-manager"),
                f"--kubeconfig={site.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",  # no HTTPS endpoint: nothing reads it, no port to race for
                f"--service-account-private-key-file={sa_key}",
                "--use-service-account-credentials=false",
                # A node is NotReady once its Lease is this old (default 50 s; kwok renews at
                # a quarter of the lease).
                f"--node-monitor-grace-period={max(50, node_lease_s + 10)}s",
            ],
            root,
        )
    )
    site.processes.append(
        _spawn(
            "kube-scheduler",
            [
                _binary("kube-scheduler"),
                f"--kubeconfig={site.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
            ],
            root,
        )
    )

    # 6. kwok, managing only the nodes annotated as fake, with the upstream Stage files.
    stages = root / "kwok-stages.yaml"
    stages.write_text("\n---\n".join(p.read_text() for p in kwok_stage_paths()))
    site.processes.append(
        _spawn(
            "kwok",
            [
                _binary("kwok"),
                f"--kubeconfig={site.kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--node-lease-duration-seconds={node_lease_s}",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
            root,
        )
    )

    # 7. The inventory's nodes (created 8 at a time: thousands for the benchmark); kwok marks
    # them Ready.
    nodes = node_manifests(site.name, inventory)
    names = [node["metadata"]["name"] for node in nodes]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda node: api.create("/api/v1/nodes", node), nodes))

    def nodes_ready() -> bool:
        listed = api.request("GET", f"/api/v1/nodes?labelSelector={SITE_LABEL}%3D{site.name}")
        ready = {
            n["metadata"]["name"]
            for n in listed["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        }
        return ready >= set(names)

    _wait(f"{len(names)} KWOK nodes Ready", nodes_ready, site.processes, timeout)
