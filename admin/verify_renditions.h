/* verify_renditions.h -- pixflow verify's check of `renditions` (SPEC §6) against `images` and
 * `originals`: each document's _id is "<original>/<rendition>" of its own fields, names a stored
 * image, and an original that is kept. */
#ifndef PIXFLOW_VERIFY_RENDITIONS_H
#define PIXFLOW_VERIFY_RENDITIONS_H

#include "mdb.h"

struct verify_renditions {
    long long checked, bad_id, dangling, no_original;
};

enum verify_rendition_problem { VR_BAD_ID, VR_DANGLING, VR_NO_ORIGINAL };

typedef void verify_renditions_fn(void *arg, const char *id, enum verify_rendition_problem what,
                                  const char *detail);

/* One cursor over `renditions` (inserted since since_ms, or all when -1), two reads by _id per
 * document. Nothing is changed. 0, or -1 with err when MongoDB failed. */
int verify_renditions(struct mdb *m, long long since_ms, verify_renditions_fn *problem, void *arg,
                      struct verify_renditions *out, char *err, size_t errlen);

/* verify --fix moved image `image` away: the `renditions` documents naming it go too, so that
 * its URL's re-stored picture (or a reprocess) records them again. */
int verify_renditions_forget(struct mdb *m, const bson_value_t *image, char *err, size_t errlen);

#endif
