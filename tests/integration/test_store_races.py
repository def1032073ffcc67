"""The store's races through the whole pipeline (store/store.c, SPEC §6): many URLs that return
the same few pictures, two workers at once, and a worker killed with SIGKILL in the middle. At
rest the layout must hold whatever happened: one `images` document per picture and `stored` =
their number, one `sources` document per stored or aliased URL naming an existing image with the
role that image's own source and stream_id give it, and the counters reconciled."""
import time

import pytest

from pixflow_helpers import Keys, reconcile, token, wait_for

PICSUM = "https://picsum.photos"


@pytest.fixture
def keys(redis_client, env):
    return Keys(redis_client, env["PIXFLOW_PREFIX"])


def aliasing_urls(n, size=24):
    """n URLs of one small size: picsum picks one of about a thousand photographs per request,
    so many of them come back with bytes another URL already produced."""
    t = token()
    return [f"{PICSUM}/{size}/{size}?k={i}&u={t}" for i in range(n)]


def assert_layout(keys, db, urls):
    stats = keys.stats()
    problem = reconcile(stats, db["images"].count_documents({}))
    assert problem is None, problem
    images = {d["_id"]: d for d in db["images"].find({}, {"image": 0})}
    sources = {s["_id"]: s for s in db["sources"].find({})}
    assert set(sources) == set(urls), set(urls) ^ set(sources)
    assert stats["stored"] + stats["aliased"] == len(urls), stats
    roles = {"source": 0, "alias": 0}
    for url, s in sources.items():
        img = images.get(s["image"])
        assert img is not None, f"{url} names a missing image {s['image']}"
        want = "source" if img["source"] == url and img["stream_id"] == s["stream_id"] else "alias"
        assert s["role"] == want, (url, s, img["source"], img["stream_id"])
        roles[want] += 1
    for img in images.values():
        s = sources.get(img["source"])
        assert s is not None and s["image"] == img["_id"] and s["role"] == "source", img
        assert "aliases" not in img and "alias_from" not in img
    assert roles == {"source": stats["stored"], "alias": stats["aliased"]}, (roles, stats)
    return stats


def test_two_workers_on_an_aliasing_catalog(env, keys, mongo_db, fleet):
    urls = aliasing_urls(160)
    keys.xadd_all(urls)
    a = fleet.start(env, "A", "--max-inflight", "32", "--exit-when-idle", "2s")
    b = fleet.start(env, "B", "--max-inflight", "32", "--exit-when-idle", "2s")
    a.assert_clean_exit(90)
    b.assert_clean_exit(90)
    stats = assert_layout(keys, mongo_db, urls)
    assert stats["aliased"] > 0, stats  # the catalog did alias


def test_kill_9_mid_run_on_an_aliasing_catalog(env, keys, mongo_db, fleet):
    urls = aliasing_urls(120)
    slow = [u + "&fault=slow&delay_ms=1500" for u in aliasing_urls(20, size=25)]
    keys.xadd_all(urls + slow)
    a = fleet.start(env, "A", "--max-inflight", "40")
    wait_for("worker A to store some and hold the slow ones",
             lambda: keys.stats().get("received", 0) >= 40 and
             keys.pending_by_consumer().get("A", 0) > 0, 30)
    time.sleep(0.2)
    a.kill()
    b = fleet.start(env, "B", "--entry-deadline", "2s", "--fetch-timeout", "3s",
                    "--reclaim-idle", "6s", "--reclaim-every", "500ms", "--exit-when-idle", "2s")
    b.assert_clean_exit(90)
    assert keys.pending() == 0
    assert_layout(keys, mongo_db, urls + slow)
