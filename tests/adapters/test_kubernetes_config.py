"""The kubernetes adapter's configuration section: checked, with the bad key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.kubernetes.config import SecretRef, parse_config
from adapters.kubernetes.manifest import NAMESPACE_PREFIX


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    return str(path)


def test_a_full_section(kubeconfig: str) -> None:
    parsed = parse_config(
        {
            "adapter": "kubernetes",
            "kubeconfig": kubeconfig,
            "context": "admin",
            "prices": {"H20-96G": 9.5, "RTX4090-48G": 2},
            "image": "rayproject/ray:2.49.0",
            "namespace_prefix": "team-",
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        }
    )
    assert parsed.kubeconfig == Path(kubeconfig)
    assert parsed.context == "admin"
    assert parsed.prices == {"H20-96G": 9.5, "RTX4090-48G": 2.0}
    assert parsed.namespace_prefix == "team-"
    assert parsed.tolerations == ({"key": "dedicated", "operator": "Exists"},)


def test_defaults_and_a_secret() -> None:
    parsed = parse_config({"kubeconfig_secret": {"namespace": "i", "name": "s", "key": "k"}})
    assert parsed.kubeconfig is None
    assert parsed.kubeconfig_secret == SecretRef("i", "s", "k")
    assert parsed.namespace_prefix == NAMESPACE_PREFIX
    assert (parsed.prices, parsed.image, parsed.tolerations) == ({}, None, ())


SECRET = {"namespace": "i", "name": "s", "key": "k"}


@pytest.mark.parametrize(
    ("name", "config", "key"),
    [
        ("neither", {}, "kubeconfig"),
        ("both", {"kubeconfig": "KUBECONFIG", "kubeconfig_secret": SECRET}, "kubeconfig"),
        ("missing file", {"kubeconfig": "/nonexistent/kubeconfig"}, "kubeconfig"),
        ("not a string", {"kubeconfig": 42}, "kubeconfig"),
        ("unknown key", {"kubeconfig": "KUBECONFIG", "kubecontext": "x"}, "kubecontext"),
        ("other adapter", {"adapter": "ray", "kubeconfig": "KUBECONFIG"}, "adapter"),
        ("secret not a map", {"kubeconfig_secret": "s"}, "kubeconfig_secret"),
        (
            "secret without key",
            {"kubeconfig_secret": {"namespace": "i", "name": "s"}},
            "kubeconfig_secret.key",
        ),
        (
            "secret with extra",
            {"kubeconfig_secret": {**SECRET, "field": "x"}},
            "kubeconfig_secret.field",
        ),
        (
            "hub without secret",
            {"kubeconfig": "KUBECONFIG", "hub_kubeconfig": "KUBECONFIG"},
            "hub_kubeconfig",
        ),
        ("hub missing", {"kubeconfig_secret": SECRET, "hub_kubeconfig": "/no"}, "hub_kubeconfig"),
        ("empty context", {"kubeconfig": "KUBECONFIG", "context": ""}, "context"),
        ("prices not a map", {"kubeconfig": "KUBECONFIG", "prices": [1]}, "prices"),
        ("negative price", {"kubeconfig": "KUBECONFIG", "prices": {"H20": -1}}, "prices.H20"),
        ("price a string", {"kubeconfig": "KUBECONFIG", "prices": {"H20": "9"}}, "prices.H20"),
        ("price a bool", {"kubeconfig": "KUBECONFIG", "prices": {"H20": True}}, "prices.H20"),
        ("image empty", {"kubeconfig": "KUBECONFIG", "image": " "}, "image"),
        (
            "prefix upper case",
            {"kubeconfig": "KUBECONFIG", "namespace_prefix": "Team-"},
            "namespace_prefix",
        ),
        (
            "prefix too long",
            {"kubeconfig": "KUBECONFIG", "namespace_prefix": "x" * 31},
            "namespace_prefix",
        ),
        ("tolerations a map", {"kubeconfig": "KUBECONFIG", "tolerations": {}}, "tolerations"),
        (
            "toleration typo",
            {"kubeconfig": "KUBECONFIG", "tolerations": [{"keys": "x"}]},
            "tolerations[0].keys",
        ),
    ],
)
def test_bad_input_names_the_key(
    kubeconfig: str, name: str, config: dict[str, Any], key: str
) -> None:
    config = {k: kubeconfig if v == "KUBECONFIG" else v for k, v in config.items()}
    with pytest.raises(ValueError) as err:
        parse_config(config)
    assert str(err.value).startswith(f"{key}:"), (name, str(err.value))
