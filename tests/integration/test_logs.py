"""Logs a hostile input cannot forge: a URL carrying a newline and a fake record stays inside one
record (text and JSON), and credentials in URLs never reach the output."""
import json
import re

import pytest

import conftest
from pixflow_helpers import Keys, token, wait_for

FORGED = "event=forged level=error"


def forged_url():
    return (f"https://picsum.photos/20/20?f={token()}\n"
            f"2026-01-01T00:00:00.000Z error pixflow-consumer {FORGED}")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_newline_in_a_url_cannot_forge_a_record(env, redis_client, fleet, fmt):
    keys = Keys(redis_client, env["PIXFLOW_PREFIX"])
    url = forged_url()
    keys.xadd(url)
    worker = fleet.start(dict(env, PIXFLOW_LOG_FORMAT=fmt), "w1")
    wait_for("the dead letter", lambda: "dead_letter" in worker.log(), 20)
    worker.signal(15)
    worker.assert_clean_exit(15)
    lines = worker.log().splitlines()
    dead = [line for line in lines if "dead_letter" in line]
    assert len(dead) == 1, lines
    assert not any(line.startswith("2026-01-01T00:00:00.000Z") for line in lines), lines
    if fmt == "json":
        records = [json.loads(line) for line in lines]  # every line is one whole record
        (rec,) = [r for r in records if r.get("event") == "dead_letter"]
        assert rec["url"] == url  # intact, newline included
        assert rec["reason"] and rec["level"] == "info"
    else:
        assert re.search(r' url="https://picsum\.photos/20/20\?f=\w+\\n2026-01-01T00:00:00\.000Z '
                         r'error pixflow-consumer event=forged level=error" reason=', dead[0]), \
            dead[0]


def test_passwords_in_urls_are_masked(env):
    secret = "S3cretPassw0rd" + token()
    bad = dict(env, PIXFLOW_REDIS_URL=f"redis://:{secret}@127.0.0.1:6379/notanumber")
    r = conftest.run("pixflow-consumer", env=bad)
    assert r.returncode == 2
    assert b"bad database number in 'redis://:***@127.0.0.1:6379/notanumber'" in r.stderr
    assert secret.encode() not in r.stdout + r.stderr

    bad = dict(env, PIXFLOW_MONGO_URI=f"mongo://pixflow:{secret}@db/pixflow")
    r = conftest.run("pixflow-consumer", env=bad)
    assert r.returncode == 2 and b"'mongo://pixflow:***@db/pixflow'" in r.stderr
    assert secret.encode() not in r.stdout + r.stderr

    # The ingest CLI shares the settings; its errors are masked as well.
    bad = dict(env, PIXFLOW_REDIS_URL=f"redis://user:{secret}@[::1/0")
    r = conftest.run("pixflow-ingest", "-", env=bad, input="")
    assert r.returncode != 0 and secret.encode() not in r.stdout + r.stderr
