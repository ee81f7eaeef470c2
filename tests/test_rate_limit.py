"""Token buckets (probe/rate_limit.py), driven by a clock the test sets."""

from __future__ import annotations

import pytest

from probe.rate_limit import Bucket, KeyedBuckets
from probe.web.push_route import redact_push_token


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = Bucket(rate=2.0, burst=3.0, updated=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # one more in half a second
    assert bucket.wait(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0.0
    assert bucket.take(110.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at burst
    assert Bucket.retry_after(0.01) == "1" and Bucket.retry_after(2.2) == "3"


def test_keyed_buckets_stay_bounded_and_forget_the_least_recent() -> None:
    now = [0.0]
    buckets = KeyedBuckets(rate=1.0, burst=1.0, capacity=3, clock=lambda: now[0])
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    assert buckets.wait("a") > 0 and buckets.wait("never") == 0.0
    for key in ("b", "c", "d"):
        buckets.take(key)
    assert len(buckets) == 3
    assert buckets.wait("a") == 0.0  # forgotten: it starts full again
    now[0] = 1.0
    assert buckets.take("b") == 0.0


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/api/v1/push/s3cr3t-t0ken-abcdef", "/api/v1/push/***"),
        ("/api/v1/push/s3cr3t-t0ken-abcdef/start", "/api/v1/push/***/start"),
        ("/api/v1/sla", "/api/v1/sla"),
        ("/x/api/v1/push/abc", "/x/api/v1/push/abc"),
    ],
)
def test_the_access_log_path_hides_a_push_token(path: str, shown: str) -> None:
    assert redact_push_token(path) == shown
