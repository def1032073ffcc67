/* transforms.h -- one generation of the transform chain: the plugins loaded from the plugin
 * folder, the chain built from PIXFLOW_TRANSFORMS, and its lineage for the documents.
 *
 * A worker builds a new generation on SIGHUP and switches to it between entries: an entry keeps
 * the generation it started its CPU stage with (a reference), so a chain is never swapped under a
 * picture, and an old generation is unloaded when its last entry lets go. */
#ifndef PIXFLOW_TRANSFORMS_H
#define PIXFLOW_TRANSFORMS_H

#include "chain.h"
#include "lineage.h"
#include "loader.h"

struct transforms {
    struct loader *loader;
    struct chain *chain;
    struct lineage_link *lineage; /* what documents record as `transforms` */
    int nlineage;
    char *spec; /* the chain as built, e.g. "grayscale,resize:width=320" */
    int refs;   /* the worker's, plus one per entry using it */
};

/* `spec` is a chain, or "@FILE" to read the chain from FILE (re-read at each load: a mounted
 * ConfigMap, say). NULL with err when a plugin folder cannot be read, the chain names a plugin
 * that is not there, or a link's init refuses its config. counter gets the chain's counters. */
struct transforms *transforms_load(const char *plugin_path, const char *spec,
                                   loader_counter_fn counter, void *arg, char *err, size_t errlen);
struct transforms *transforms_ref(struct transforms *t);
/* Frees the generation when the last reference goes. Loop thread only, like transforms_ref. */
void transforms_unref(struct transforms *t);

/* A rendition's name (SPEC §6): 1 to 64 of [a-z0-9_-], and not "default" (PIXFLOW_TRANSFORMS's
 * own), so that "<original>/<name>" is a `renditions` _id. */
#define RENDITION_NAME_MAX 64
int rendition_name_ok(const char *name);

#endif
