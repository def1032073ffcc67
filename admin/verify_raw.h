/* verify_raw.h -- pixflow verify's check of the raw zone (SPEC §5.9): every `originals` document
 * has its object in the raw store, and with --raw the object's bytes hash to its name. */
#ifndef PIXFLOW_VERIFY_RAW_H
#define PIXFLOW_VERIFY_RAW_H

#include "mdb.h"
#include "raw.h"

struct verify_raw {
    long long checked, missing, damaged;
};

/* One damaged or missing original: its sha256, the URL that first brought it, and the detail. */
typedef void verify_raw_problem_fn(void *arg, const char *sha256, const char *url, int missing,
                                   const char *detail);

/* Walks `originals` (inserted since since_ms, or all when -1) with one cursor, a HEAD per
 * document, or a GET and a SHA-256 with rehash. Nothing is ever removed. 0, or -1 with err when
 * MongoDB or the raw store failed (not for a missing or damaged object: those are problems). */
int verify_raw(struct mdb *m, struct raw_store *r, int rehash, long long since_ms,
               verify_raw_problem_fn *problem, void *arg, struct verify_raw *out, char *err,
               size_t errlen);

#endif
