"""celery_peer.py -- the Celery + Pillow + pymongo peer that bench_celery.py measures pixflow against.

One task per URL, written the way a Python team would: requests.get (following picsum's
redirect), Pillow Image.open(...).convert("L"), save as PNG, base64, SHA-256 of the PNG, then
an upsert by SHA-256 ($setOnInsert, so a picture another URL already stored is left as it is),
and a Redis INCR of a done or a failed counter so the producer knows when everything is finished.

Configured from the environment (bench_celery.py sets it; the worker runs `celery -A celery_peer`):
  PEER_BROKER        Redis URL of the broker (its own db number on the stack's Redis)
  PEER_MONGO_URI     MongoDB URI; PEER_DB the database the peer writes to
  PEER_COUNTERS      key prefix of the done / failed counters (in the broker's Redis db)
  PIXFLOW_CONNECT_TO "host:port:addr:port,..." (the stack's): where picsum.photos really is
  PIXFLOW_CA_FILE    the test CA the image server's certificate is signed by

picsum.photos is reached over HTTPS at the local image server by mapping the host only when the
TCP connection is made (urllib3's create_connection): the URL, the SNI and the certificate check
all keep the name picsum.photos, verified against the test CA, as with the real service.
"""
import base64
import datetime
import hashlib
import io
import os

import pymongo
import redis
import requests
import urllib3.util.connection
from celery import Celery
from PIL import Image

BROKER = os.environ.get("PEER_BROKER", "redis://127.0.0.1:6379/1")
COUNTERS = os.environ.get("PEER_COUNTERS", "peer:")
CA_FILE = os.environ.get("PIXFLOW_CA_FILE") or True

app = Celery("celery_peer", broker=BROKER)
app.conf.update(task_ignore_result=True, task_serializer="json", accept_content=["json"],
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


def connect_map(spec):
    """{(host, port): (addr, port)} from "host:port:addr:port,..." (curl's --connect-to form)."""
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        host, port, addr, aport = item.split(":")
        out[(host, int(port))] = (addr, int(aport))
    return out


CONNECT_TO = connect_map(os.environ.get("PIXFLOW_CONNECT_TO", ""))
_create_connection = urllib3.util.connection.create_connection


def create_connection(address, *args, **kwargs):
    return _create_connection(CONNECT_TO.get((address[0], address[1]), address), *args, **kwargs)


urllib3.util.connection.create_connection = create_connection

# redis-py opens its connections on first use and again in a forked child.
counters = redis.Redis.from_url(BROKER)
# One of each per worker process, made on first use: after the prefork pool's fork.
_clients = {}


def clients():
    if not _clients:
        mongo = pymongo.MongoClient(os.environ["PEER_MONGO_URI"])
        _clients.update(http=requests.Session(), images=mongo[os.environ["PEER_DB"]]["images"])
    return _clients


@app.task(name="celery_peer.fetch_store")
def fetch_store(url):
    try:
        c = clients()
        # verify= per request: a session's verify loses to REQUESTS_CA_BUNDLE from the environment.
        r = c["http"].get(url, timeout=30, verify=CA_FILE)
        r.raise_for_status()
        img = Image.open(io.BytesIO(r.content)).convert("L")
        out = io.BytesIO()
        img.save(out, format="PNG")
        png = out.getvalue()
        sha = hashlib.sha256(png).hexdigest()
        doc = {"image": base64.b64encode(png).decode(), "sha256": sha, "format": "png",
               "width": img.width, "height": img.height, "channels": 1, "bytes": len(png),
               "source": url, "origin": {"sha256": hashlib.sha256(r.content).hexdigest(),
                                         "bytes": len(r.content)},
               "inserted_at": datetime.datetime.now(datetime.timezone.utc)}
        try:
            c["images"].update_one({"_id": sha}, {"$setOnInsert": doc}, upsert=True)
        except pymongo.errors.DuplicateKeyError:
            # Two tasks upserting the same new picture at once: the other one stored it.
            # MongoDB retries such an upsert itself; FerretDB reports the collision.
            pass
    except Exception:
        counters.incr(COUNTERS + "failed")
        raise
    counters.incr(COUNTERS + "done")
