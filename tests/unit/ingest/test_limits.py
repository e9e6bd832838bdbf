from services.ingest.limits import TokenBuckets


def test_a_source_may_burst_then_waits_for_its_rate() -> None:
    buckets = TokenBuckets(burst_seconds=2)
    assert [buckets.take("s", 5, 1, now=0.0) for _ in range(10)] == [0.0] * 10
    assert buckets.take("s", 5, 1, now=0.0) == 0.2
    assert buckets.take("s", 5, 1, now=0.2) == 0.0


def test_sources_do_not_share_a_bucket() -> None:
    buckets = TokenBuckets(burst_seconds=1)
    assert buckets.take("a", 1, 1, now=0.0) == 0.0
    assert buckets.take("a", 1, 1, now=0.0) > 0
    assert buckets.take("b", 1, 1, now=0.0) == 0.0


def test_a_batch_larger_than_the_burst_passes_on_a_full_bucket() -> None:
    buckets = TokenBuckets(burst_seconds=1)
    assert buckets.take("s", 10, 500, now=0.0) == 0.0
    assert buckets.take("s", 10, 1, now=0.0) > 0
