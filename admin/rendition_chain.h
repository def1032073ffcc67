/* rendition_chain.h -- what `pixflow renditions` and `pixflow reprocess` share: a rendition's
 * name rule and its chain built from this machine's plugins, with the lineage documents record. */
#ifndef PIXFLOW_RENDITION_CHAIN_H
#define PIXFLOW_RENDITION_CHAIN_H

#include <stddef.h>

#include "chain.h"
#include "lineage.h"
#include "loader.h"
#include "settings.h"
#include "transforms.h" /* rendition_name_ok */

struct rendition_chain {
    struct loader *loader;
    struct chain *chain;
    struct lineage_link *lineage; /* name, version, .so sha256, config of each link */
    int n;
};

/* Loads the plugin folder and builds spec; -1 with err (a missing plugin lists what loads). */
int rendition_chain_load(const struct settings *s, const char *spec, struct rendition_chain *rc,
                         char *err, size_t errlen);
void rendition_chain_free(struct rendition_chain *rc);

#endif
