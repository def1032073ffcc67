/* names.h -- every name pixflow shares with the outside world, once: Redis keys (SPEC §3), stream
 * and dead-letter fields, heartbeat fields, counters (SPEC §7), MongoDB collections and document
 * fields (SPEC §6). Code spells these through the macros, never as literals, so a rename is one
 * line and a typo is a compile error.
 *
 * Keys are suffixes: the full key is the configured prefix (PIXFLOW_PREFIX, "pixflow:") followed
 * by the suffix, built with settings_key(). */
#ifndef PIXFLOW_NAMES_H
#define PIXFLOW_NAMES_H

/* ---- Redis keys (suffixes of the prefix) ---- */
#define KEY_STREAM     "urls"    /* stream: the input */
#define KEY_SEEN       "seen"    /* set: normalized URLs accepted (the dedup set) */
#define KEY_STATS      "stats"   /* hash: live counters */
#define KEY_DEAD       "dead"    /* stream: dead letters */
#define KEY_STORING    "storing" /* hash: entry id -> consumer, for entries whose store began */
#define KEY_WORKER     "worker:" /* hash per worker, expires: heartbeat (followed by its name) */
#define KEY_INGEST_RUN "ingest:run:" /* string per ingest run, expires: its last counting */
#define KEY_RENDITIONS       "renditions"  /* hash: rendition name -> chain, besides `default` */
#define KEY_REPROCESS        "reprocess"   /* stream: work queued by `pixflow reprocess` */
#define KEY_REPROCESS_QUEUED "reprocess:queued" /* set: <original>/<rendition>, queued */
#define KEY_REPROCESS_STORING "reprocess:storing" /* hash: the storing marks of that stream */

/* Politeness (SPEC §5.8): each source host's fleet-wide state is KEY_HOST<host><suffix>. */
#define KEY_HOST        "host:"
#define KEY_HOST_STATE  ":state"      /* hash: the HOST_* fields below */
#define KEY_HOST_LEASES ":leases"     /* sorted set: request lease -> deadline (ms, Redis clock) */
#define KEY_HOST_PROBES ":probes"     /* sorted set: the half-open circuit's probes -> deadline */
#define KEY_HOSTS       "hosts"       /* set: every host the fleet has asked for */
#define KEY_HOSTS_FLEET "hosts:fleet" /* sorted set: worker -> its last ask (ms), for shares */
/* sorted set: lease of an ask that found the host full -> when it joined (ms), served in turn */
#define KEY_HOST_QUEUE  ":queue"
/* channel KEY_HOSTS_WAKE<worker>: "HOST LEASE WAIT_MS", a slot handed to its queued ask */
#define KEY_HOSTS_WAKE  "hosts:wake:"

/* ---- fields of a host's KEY_HOST_STATE (times in ms of Redis's clock) ---- */
#define HOST_TAT         "tat"          /* GCRA: theoretical arrival time of the next request */
#define HOST_PAUSE_UNTIL "pause_until"  /* no request starts before (429/503) */
#define HOST_PAUSE_MS    "pause_ms"     /* the last backoff without Retry-After (doubles) */
#define HOST_FAILS       "fails"        /* consecutive failures */
#define HOST_CIRCUIT     "circuit"      /* 0 closed, 1 open, 2 half-open */
#define HOST_OPEN_UNTIL  "open_until"   /* an open circuit lets probes through from then */
#define HOST_OPEN_MS     "open_ms"      /* how long it opened for (doubles while probes fail) */
#define HOST_LIMIT       "concurrency"  /* adaptive requests at once, <= the configured inflight */
#define HOST_CUT_AT      "cut_at"       /* when the limit was last halved */
#define HOST_DURATION    "duration_ms"  /* mean request time, for the wait hint when full */
#define HOST_INFLIGHT    "max_inflight" /* the configured inflight of the last ask */
#define HOST_RATE        "max_rate"     /* the configured rate of the last ask */
#define HOST_WAITS       "waits"        /* requests that waited for the host, ever */
#define HOST_KEPT        "kept_at"      /* when the host's keys last had their TTL renewed */
#define HOST_QUEUED      "queued"       /* 0: the queue is empty (no ask waits for a slot) */

/* ---- input stream fields ---- */
#define FIELD_URL    "url"
#define FIELD_SOURCE "source" /* the catalog an entry came from (ingest) */
#define FIELD_LINE   "line"   /* its line number there */

/* ---- reprocess stream fields ---- */
#define FIELD_ORIGINAL  "original"  /* the original's sha256 */
#define FIELD_RENDITION "rendition" /* the rendition's name */

#define FIELD_REPLAY_OF "replay_of" /* a replayed entry: the dead letter it came from */
#define FIELD_CORRUPT   "corrupt"   /* a re-queued entry: the corrupt document it replaces */

/* ---- dead-letter fields (besides FIELD_URL) ---- */
#define DEAD_REASON   "reason"
#define DEAD_ERROR    "error"
#define DEAD_ATTEMPTS "attempts"
#define DEAD_ENTRY    "entry" /* the original stream id */
#define DEAD_CONSUMER "consumer"

/* ---- heartbeat fields ---- */
#define HB_IN_FLIGHT  "in_flight"
#define HB_PROCESSED  "processed"
#define HB_STARTED_AT "started_at"
#define HB_LAST_SEEN  "last_seen"
#define HB_VERSION    "version"
#define HB_GROUP      "group"
#define HB_RENDITIONS        "renditions"        /* the renditions this worker produces */
#define HB_RENDITIONS_FAILED "renditions_failed" /* those it cannot load, with why */

/* ---- counters (fields of KEY_STATS) ---- */
#define C_INGEST_LINES      "ingest_lines"
#define C_INGEST_QUEUED     "ingest_queued"
#define C_INGEST_DUPLICATES "ingest_duplicates"
#define C_INGEST_INVALID    "ingest_invalid" /* also per reason: ingest_invalid:<reason> */
#define C_RECEIVED          "received"
#define C_DUPLICATES        "duplicates"
#define C_INVALID           "invalid"
#define C_STORED            "stored"
#define C_ALIASED           "aliased"
#define C_FAILED            "failed" /* also per reason: failed:<reason> */
#define C_RETRIES           "retries"
#define C_RECLAIMED         "reclaimed"
#define C_BYTES_IN          "bytes_in"
#define C_BYTES_OUT         "bytes_out"
#define C_HOST_WAITS        "host_waits" /* requests that waited for a host's limit or pause */
#define C_REPLAYED          "replayed"        /* dead letters put back (pixflow dead --replay) */
#define C_VERIFY_MOVED      "verify_moved"    /* documents verify --fix moved to images_corrupt */
#define C_VERIFY_REQUEUED   "verify_requeued" /* URLs verify --fix queued again */
#define C_TRANSFORM         "transform:"      /* transform:<name>:ok|failed|usec|<plugin's own> */
#define C_T_OK              "ok"     /* transform:<name>:ok, a picture went through the link */
#define C_T_FAILED          "failed" /* transform:<name>:failed, the link refused it */
#define C_T_USEC            "usec"   /* transform:<name>:usec, time spent in the link */
#define C_RAW_PUT           "raw_put"      /* originals written to the raw store */
#define C_RAW_BYTES         "raw_bytes"    /* their bytes */
#define C_RAW_EXISTING      "raw_existing" /* originals the raw store had already */
#define C_RAW_USEC          "raw_usec"     /* time spent keeping them (look, then write) */
#define C_REPROCESS_QUEUED  "reprocess_queued" /* entries `pixflow reprocess` added */
#define C_REPROCESSED       "reprocessed"      /* of them, done: the rendition is stored */
#define C_REPROCESS_FAILED  "reprocess_failed" /* dead-lettered (also reprocess_failed:<why>) */
#define C_RENDITIONS        "renditions"       /* renditions stored besides `default` */

/* ---- MongoDB collections ---- */
#define COLL_IMAGES   "images"
#define COLL_SOURCES  "sources"
#define COLL_ORIGINALS "originals"     /* one document per distinct original (raw store) */
#define COLL_RENDITIONS "renditions"    /* one document per (original, rendition) */
#define COLL_CORRUPT  "images_corrupt" /* where verify --fix moves corrupt documents */
#define GRIDFS_BUCKET "images"         /* GridFS bucket of images over the BSON limit */

/* ---- `images` document fields ---- */
#define DOC_ID          "_id"
#define DOC_IMAGE       "image"
#define DOC_SHA256      "sha256"
#define DOC_FORMAT      "format"
#define DOC_WIDTH       "width"
#define DOC_HEIGHT      "height"
#define DOC_CHANNELS    "channels"
#define DOC_BYTES       "bytes"
#define DOC_SOURCE      "source"
#define DOC_ORIGIN      "origin"
#define DOC_TRANSFORMS  "transforms"
#define DOC_DECODER     "decoder" /* what made the pixels from the download: DECODER_* */
#define DOC_ENCODER     "encoder" /* the stored format with its settings: "png:level=0" */
#define DOC_INSERTED_AT "inserted_at"
#define DOC_STREAM_ID   "stream_id"
#define DOC_CONSUMER    "consumer"
#define DOC_ATTEMPTS    "attempts"
#define DOC_STORAGE     "storage" /* "gridfs" when the image is in GridFS */
#define DOC_GRIDFS_ID   "gridfs_id"
#define STORAGE_GRIDFS  "gridfs" /* the value of DOC_STORAGE for a GridFS image */

/* ---- fields of DOC_ORIGIN (besides DOC_BYTES, DOC_SHA256, DOC_WIDTH, DOC_HEIGHT) and of each
 * DOC_TRANSFORMS element (besides DOC_SHA256, of the plugin's .so) ---- */
#define ORIGIN_FINAL_URL    "final_url"
#define ORIGIN_CONTENT_TYPE "content_type"
#define ORIGIN_ORIENTATION  "orientation"
#define LINK_NAME           "name"
#define LINK_VERSION        "version"
#define LINK_CONFIG         "config" /* in `renditions` chains: the link's configuration */

/* ---- fields of DOC_DECODER (besides LINK_VERSION, the library's) ---- */
#define DECODER_LIBRARY "library" /* "libjpeg-turbo", "stb_image" */
#define DECODER_PATH    "path"    /* "luma", "rgb", "pixels", "coefficients" (codec/image.h) */
#define DECODER_SCALE   "scale"   /* 1, 2, 4 or 8: a JPEG shrunk in the IDCT */

/* ---- `originals` document fields (besides DOC_ID = the sha256 of the downloaded bytes,
 * DOC_BYTES, DOC_FORMAT, DOC_WIDTH, DOC_HEIGHT, DOC_SOURCE, DOC_INSERTED_AT, and
 * ORIGIN_CONTENT_TYPE) ---- */
#define ORIG_RAW "raw" /* where the bytes are: s3://bucket/prefix/ab/<sha256>, file:///... */

/* ---- `renditions` document fields (besides DOC_ID = <original>/<name>, DOC_INSERTED_AT);
 * `images` documents gain DOC_RENDITION (the name that first produced them) ---- */
#define DOC_RENDITION "rendition"
#define REND_IMAGE    "image"    /* the `images` _id it produced */
#define REND_ORIGINAL "original" /* the original's sha256 */
#define REND_CHAIN    "chain"    /* as DOC_TRANSFORMS */
#define REND_DEFAULT  "default"  /* the rendition PIXFLOW_TRANSFORMS makes */

/* ---- fields verify --fix adds to a document it moves to COLL_CORRUPT ---- */
#define DOC_VERIFY_PROBLEMS "verify_problems"
#define DOC_VERIFY_MOVED_AT "verify_moved_at"
#define DOC_VERIFY_REQUEUED "verify_requeued" /* its URLs are queued again */

/* ---- `sources` document fields (besides DOC_ID = the URL, DOC_STREAM_ID, DOC_CONSUMER,
 * DOC_INSERTED_AT) ---- */
#define SRC_IMAGE   "image" /* _id of the image the URL produced */
#define SRC_ROLE    "role"
#define SRC_ORIGIN  "origin" /* _id of the original (its sha256) the URL's download was */
#define ROLE_SOURCE "source" /* it first produced that image */
#define ROLE_ALIAS  "alias"  /* identical bytes were already stored */

#endif
