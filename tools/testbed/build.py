#!/usr/bin/env python3
"""Build the testbed's binaries from Go modules with the machine's Go.

    python tools/testbed/build.py            # build what is missing, reuse the rest
    python tools/testbed/build.py --force    # rebuild everything for the pinned versions
    python tools/testbed/build.py --print-bin-dir

Versions come only from scheduler/testbed/versions.py. Binaries go to
~/.cache/isthmus/testbed/<version-key>/bin, the module cache and build cache next to it; nothing
is written into the repository. Each binary's wall-clock build time is appended to
<version-key>/build-times.json so docs/testbed.md can quote measured figures.

Every step is one `go` command at a time with -p 2 (the CI machine has 2 cores); a cold build
of the whole set takes tens of minutes, a warm one seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scheduler.testbed import versions  # noqa: E402

MODULES = REPO / "tools" / "testbed" / "modules"
K8S_TAGS = "selinux,notest,grpcnotrace"  # hack/lib/golang.sh, non-debug builds


def go_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CGO_ENABLED="0",
        GOFLAGS="-mod=mod",
        GOMODCACHE=str(versions.gomodcache()),
        GOPATH=str(root / "gopath"),
        GOCACHE=str(root / "gocache"),
        GOTOOLCHAIN="local",
    )
    return env


def run(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def k8s_ldflags() -> str:
    v = versions.KUBERNETES
    major, minor = v[1:].split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={v}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def staging_modules(env: dict[str, str], work: Path) -> list[str]:
    """The staging modules k8s.io/kubernetes replaces with ./staging/..., read from its go.mod."""
    run(["go", "mod", "download", f"k8s.io/kubernetes@{versions.KUBERNETES}"], work, env)
    gomod = versions.module_dir(("k8s.io/kubernetes", versions.KUBERNETES)) / "go.mod"
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", gomod.read_text(), re.M)))


def prepare(name: str, root: Path) -> Path:
    """Copy our wrapper module tools/testbed/modules/<name> to a scratch dir in the cache."""
    work = root / "src" / name
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(MODULES / name, work)
    return work


class Builder:
    def __init__(self, force: bool) -> None:
        self.root = versions.cache_root() / versions.version_key()
        self.bin = versions.bin_dir()
        self.bin.mkdir(parents=True, exist_ok=True)
        self.env = go_env(versions.cache_root())
        self.force = force
        self.times_file = self.root / "build-times.json"
        self.times: dict[str, float] = (
            json.loads(self.times_file.read_text()) if self.times_file.exists() else {}
        )

    def wanted(self, *names: str) -> bool:
        return self.force or any(not (self.bin / n).exists() for n in names)

    def timed(self, label: str, cmd: Sequence[str], cwd: Path) -> None:
        start = time.monotonic()
        run(cmd, cwd, self.env)
        self.times[label] = round(time.monotonic() - start, 1)
        self.times_file.write_text(json.dumps(self.times, indent=2, sort_keys=True) + "\n")
        print(f"== {label}: {self.times[label]} s", flush=True)

    def go_build(self, out: str, pkg: str, cwd: Path, ldflags: str, tags: str = "") -> None:
        cmd = [
            "go",
            "build",
            "-p",
            "2",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            str(self.bin / out),
        ]
        if tags:
            cmd += ["-tags", tags]
        self.timed(out, [*cmd, pkg], cwd)

    def go_install(self, out: str, pkg: str, version: str, ldflags: str) -> None:
        # `go install pkg@version` honours no replace directives; it builds into a scratch GOBIN.
        scratch = self.root / "gobin"
        scratch.mkdir(parents=True, exist_ok=True)
        env = dict(self.env, GOBIN=str(scratch), GOFLAGS="")
        start = time.monotonic()
        cmd = ["go", "install", "-p", "2", "-trimpath", "-ldflags", ldflags, f"{pkg}@{version}"]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=self.root, env=env, check=True)
        built = scratch / pkg.rsplit("/", 1)[-1]
        shutil.move(str(built), self.bin / out)
        self.times[out] = round(time.monotonic() - start, 1)
        self.times_file.write_text(json.dumps(self.times, indent=2, sort_keys=True) + "\n")
        print(f"== {out}: {self.times[out]} s", flush=True)

    def etcd(self) -> None:
        if not self.wanted("etcd"):
            return
        work = prepare("etcd", self.root)
        self.timed("fetch etcd", ["go", "get", f"go.etcd.io/etcd/server/v3@{versions.ETCD}"], work)
        self.timed("fetch etcd (tidy)", ["go", "mod", "tidy"], work)
        self.go_build("etcd", ".", work, "-s -w")

    def kubernetes(self) -> None:
        names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        if not self.wanted(*names):
            return
        work = prepare("kubernetes", self.root)
        edits = [
            f"-replace={mod}={mod}@{versions.KUBERNETES_STAGING}"
            for mod in staging_modules(self.env, work)
        ]
        run(["go", "mod", "edit", *edits], work, self.env)
        self.timed(
            "fetch kubernetes", ["go", "get", f"k8s.io/kubernetes@{versions.KUBERNETES}"], work
        )
        for name in names:
            if self.force or not (self.bin / name).exists():
                pkg = f"k8s.io/kubernetes/cmd/{name}"
                self.go_build(name, pkg, work, k8s_ldflags(), K8S_TAGS)

    def kwok(self) -> None:
        if self.wanted("kwok"):
            ldflags = f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={versions.KWOK[1:]}"
            self.go_install("kwok", "sigs.k8s.io/kwok/cmd/kwok", versions.KWOK, ldflags)

    def kuberay(self) -> None:
        # Not `go install …@v`: that reads the module's version list to check deprecation, and
        # the proxy refuses the list for this module (403). Build inside a copy of the module.
        if not self.wanted("ray-operator"):
            return
        path, version = versions.KUBERAY_MODULE
        self.timed("fetch kuberay", ["go", "mod", "download", f"{path}@{version}"], self.root)
        work = self.root / "src" / "ray-operator"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(versions.module_dir(versions.KUBERAY_MODULE), work)
        for sub in [work, *work.rglob("*")]:
            sub.chmod(sub.stat().st_mode | 0o200)  # the module cache is read-only
        self.go_build("ray-operator", ".", work, "-s -w")

    def helm(self) -> None:
        if self.wanted("helm"):
            ldflags = f"-s -w -X helm.sh/helm/v3/internal/version.version={versions.HELM}"
            self.go_install("helm", "helm.sh/helm/v3/cmd/helm", versions.HELM, ldflags)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if binaries exist")
    parser.add_argument("--print-bin-dir", action="store_true")
    parser.add_argument(
        "--only", nargs="*", choices=["etcd", "kubernetes", "kwok", "kuberay", "helm"]
    )
    args = parser.parse_args(argv)
    if args.print_bin_dir:
        print(versions.bin_dir())
        return 0
    if not versions.missing_binaries() and not args.force:
        print(f"testbed: all binaries present in {versions.bin_dir()}")
        return 0
    if shutil.which("go") is None:
        print("testbed: `go` is not on PATH; install Go >= 1.26", file=sys.stderr)
        return 2
    builder = Builder(force=args.force)
    steps = args.only or ["etcd", "kubernetes", "kwok", "kuberay", "helm"]
    start = time.monotonic()
    for step in steps:
        getattr(builder, step)()
    missing = versions.missing_binaries()
    print(f"testbed: {versions.bin_dir()} ({time.monotonic() - start:.0f} s)")
    if missing and not args.only:
        print(f"testbed: still missing {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
