"""The testbed's pure parts: node manifests, version key, module-cache paths (no binaries)."""

from __future__ import annotations

from collections import Counter

import pytest

from scheduler.testbed import versions
from scheduler.testbed.site import (
    ACCELERATOR_LABEL,
    DEFAULT_INVENTORY,
    KWOK_ANNOTATION,
    NodePool,
    node_manifests,
)


def test_default_inventory_nodes() -> None:
    nodes = node_manifests("a", DEFAULT_INVENTORY)
    assert Counter(n["metadata"]["labels"][ACCELERATOR_LABEL] for n in nodes) == {
        "RTX4090-48G": 4,
        "H20-96G": 2,
        "Ascend910B-64G": 2,
    }
    names = [n["metadata"]["name"] for n in nodes]
    assert len(set(names)) == len(names) and "a-ascend910b-64g-1" in names
    ascend = next(n for n in nodes if n["metadata"]["name"] == "a-ascend910b-64g-0")
    assert ascend["status"]["allocatable"]["huawei.com/Ascend910"] == "8"
    assert "nvidia.com/gpu" not in ascend["status"]["allocatable"]
    assert all(n["metadata"]["annotations"][KWOK_ANNOTATION] == "fake" for n in nodes)


@pytest.mark.parametrize(
    ("pool", "name"),
    [
        (NodePool(1, "H20-96G"), "s-h20-96g-0"),
        (NodePool(1, "RTX4090_48G.x"), "s-rtx4090-48g-x-0"),
    ],
)
def test_node_names_are_dns_labels(pool: NodePool, name: str) -> None:
    assert node_manifests("s", [pool])[0]["metadata"]["name"] == name


def test_version_key_and_cache_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("ISTHMUS_TESTBED_CACHE", str(tmp_path))
    key = versions.version_key()
    assert key.startswith(f"k8s{versions.KUBERNETES[1:]}-etcd{versions.ETCD[1:]}-")
    assert str(versions.bin_dir()) == f"{tmp_path}/{key}/bin"
    # Go's module cache escapes capitals as '!' + lower case.
    assert versions.module_dir(("github.com/Foo/bar", "v1.0.0")).name == "bar@v1.0.0"
    assert "!foo" in str(versions.module_dir(("github.com/Foo/bar", "v1.0.0")))
    assert versions.missing_binaries() == list(versions.BINARIES)
