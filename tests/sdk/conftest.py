"""One live Isthmus server per test module (tests/service/live.py): starting one takes ~1 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler.sdk import Client
from tests.service.live import LiveService, live_service


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with live_service(tmp_path_factory.mktemp("isthmus")) as server:
        yield server


@pytest.fixture
def acme(live: LiveService) -> Iterator[Client]:
    with Client(live.url, live.acme_token) as client:
        yield client
