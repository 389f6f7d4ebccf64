"""One deployment for the whole package: three `chatgate serve` replicas and a `chatgate worker`
on a scratch PostgreSQL database and a private Redis, behind HAProxy, with engines played by
doubles over real HTTP. A test that kills or drains a replica starts it again before it ends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import JWT_AUDIENCE, JWT_SECRET, TEST_ENCRYPTION_KEYS
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import serve_app
from tests.replicas.load import Tokens, client
from tests.replicas.topology import Replica, Topology, deployment_config, run_topology
from tests.resilience.engines import SwitchableEngine

REQUESTS_PER_MINUTE = 60
DRAIN_GRACE = 8  # seconds a drained replica's answers have to finish (25 by default)
TOKENS = Tokens(JWT_SECRET, JWT_AUDIENCE)


@dataclass
class Deployment:
    topology: Topology
    engine: OpenAIDouble
    fragile: SwitchableEngine

    @property
    def url(self) -> str:
        return self.topology.url


@pytest.fixture(scope="package")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    engine, fragile = OpenAIDouble(api_key="sk-double"), SwitchableEngine()
    with serve_app(engine.app()) as engine_url, serve_app(fragile.app()) as fragile_url:
        config = deployment_config(engine_url, fragile_url, requests_per_minute=REQUESTS_PER_MINUTE)
        folder = tmp_path_factory.mktemp("replicas")
        with run_topology(
            folder, config, jwt_secret=JWT_SECRET, jwt_audience=JWT_AUDIENCE,
            encryption_keys=TEST_ENCRYPTION_KEYS,
            extra_env={"CHATGATE_DRAIN_GRACE_SECONDS": str(DRAIN_GRACE)},
        ) as topology:  # fmt: skip
            yield Deployment(topology, engine, fragile)


@pytest.fixture
def replicas(deployment: Deployment) -> Iterator[Deployment]:
    """The deployment with every replica up before the test, and again after it."""
    deployment.topology.ensure_all_up()
    try:
        yield deployment
    finally:
        deployment.topology.ensure_all_up()


@pytest.fixture
async def admin(replicas: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    # An admin of the test's own: rate limits per user hold for admins too.
    admin_id = f"admin-{uuid.uuid4().hex[:8]}"
    async with client(replicas.url, TOKENS.headers(admin_id, admin=True)) as http:
        yield http


@pytest.fixture
async def balanced(replicas: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the balancer, with no user of its own (each request names one)."""
    async with client(replicas.url) as http:
        yield http


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(replica: Replica) -> Samples:
    """A replica's own /metrics, read on its own port (not through the balancer)."""
    response = httpx.get(f"{replica.url}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def scrape_all(deployment: Deployment) -> dict[str, Samples]:
    return {r.name: scrape(r) for r in deployment.topology.replicas}


def counted(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def served(
    before: dict[str, Samples], after: dict[str, Samples], route: str, method: str = "GET",
    status: str = "200",
) -> dict[str, float]:  # fmt: skip
    """Requests each replica answered on `route` with `status` between two scrapes."""
    name, labels = "chatgate_http_requests_total", {"route": route, "method": method,
                                                    "status": status}  # fmt: skip
    return {
        replica: counted(after[replica], name, **labels) - counted(before[replica], name, **labels)
        for replica in after
    }
