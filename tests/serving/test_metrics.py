"""``/metrics`` over real HTTP: Prometheus text that counts what clients did, per app."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from skillmaker.serving.app import create_app
from skillmaker.serving.bundle import read_bundle
from skillmaker.serving.v2 import INPUT_PIXELS
from tests.serving import bundles
from tests.serving.conftest import serve_in_thread

STAMP = {"skill": "digits", "skill_version": "3", "code_version": "abc123"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Give every sample of a Prometheus exposition, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset({**STAMP, **labels}.items())), 0.0)


def wait_ready(client: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_metrics_count_requests_by_route_and_status_with_the_stamp(digits_bundle: Path) -> None:
    info = read_bundle(digits_bundle)
    png = bundles.png_bytes(bundles.digits().images[0])
    pixels = {
        "inputs": [
            {"name": INPUT_PIXELS, "datatype": "UINT8", "shape": [1, 8, 8, 1], "data": [0] * 64}
        ]
    }
    with (
        serve_in_thread(create_app(info)) as url,
        serve_in_thread(create_app(info)) as other_url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        wait_ready(client)
        for _ in range(3):
            assert client.post("/predict", content=png).status_code == 200
        assert client.post("/predict", content=b"not an image").status_code == 400
        assert client.post("/v2/models/digits/infer", json=pixels).status_code == 200
        assert client.get("/nowhere/at/all").status_code == 404
        scrape = client.get("/metrics")
        other = httpx.get(f"{other_url}/metrics", timeout=30)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    found = samples(scrape.text)
    route = {"route": "/predict", "method": "POST"}
    assert value(found, "skillmaker_http_requests_total", status="200", **route) == 3
    assert value(found, "skillmaker_http_requests_total", status="400", **route) == 1
    infer = {"route": "/v2/models/{skill}/infer", "method": "POST", "status": "200"}
    assert value(found, "skillmaker_http_requests_total", **infer) == 1
    # Unknown paths share one series, so a scanner cannot blow up the number of series.
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(found, "skillmaker_http_requests_total", **unmatched) == 1
    assert value(found, "skillmaker_http_request_duration_seconds_count", **route) == 4
    assert value(found, "skillmaker_http_request_duration_seconds_sum", **route) > 0
    assert value(found, "skillmaker_http_requests_in_flight") == 1  # the scrape itself
    assert value(found, "skillmaker_model_load_seconds") > 0
    assert value(found, "skillmaker_model_warmup_seconds") > 0
    assert value(found, "skillmaker_images_predicted_total", protocol="predict") == 3
    assert value(found, "skillmaker_images_predicted_total", protocol="v2") == 1
    # A second app in the same process keeps its own registry: it saw none of these requests.
    assert value(samples(other.text), "skillmaker_http_requests_total", status="200", **route) == 0
