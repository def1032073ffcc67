/* chain.h -- a chain of loaded transforms (loader.h): built from a spec, run on pictures. */
#ifndef PIXFLOW_CHAIN_H
#define PIXFLOW_CHAIN_H

#include <stddef.h>

#include <pixflow/plugin.h>

#include "loader.h"

struct chain;

/* Builds the chain "name[:config][,name[:config]]..." (see plugin.h), calling init() of each link
 * with its config. An empty spec is the empty chain (pictures stored as decoded). NULL with err:
 * an unknown name (err lists what is loaded), a malformed spec, an init() failure. */
struct chain *loader_chain_new(struct loader *l, const char *spec, char *err, size_t errlen);
/* destroy()s every link; call it once no thread runs chain_apply() any more. */
void chain_free(struct chain *c);

/* Channels (1, 3 or 4) to decode a picture stored with `stored` channels (1..4, 2 being gray +
 * alpha) to, so it reaches the first link without conversion when that is lossless. When the
 * first link only takes fewer channels, this returns the stored count (2 counts as 4) and
 * chain_apply() reduces it with pixflow_luma(), never the decoder's own approximation. A NULL
 * chain is the empty chain. */
int chain_input_channels(const struct chain *c, int stored);

enum chain_status {
    CHAIN_OK,
    CHAIN_FAILED, /* a link refused the picture or broke the ABI: permanent */
    CHAIN_NOMEM,  /* out of memory between links: worth retrying */
};

/* Runs every link on `in`, converting channels between links as each accepts (plugin.h), and
 * counts transform:<name>:ok|failed|usec. Takes in->pixels, which must be malloc'd with at least
 * stride * height bytes: it is reused or freed whatever the result. On CHAIN_OK, *out is the
 * result, tightly packed (stride == width * channels), out->pixels malloc'd for the caller to
 * free. Otherwise err names the link. Safe to call from many threads at once. */
enum chain_status chain_apply(const struct chain *c, struct pixflow_image *in,
                              struct pixflow_image *out, char *err, size_t errlen);

/* Lineage, for the stored document's transforms field. */
struct chain_link_info {
    const char *name, *version;
    const char *sha256; /* of the plugin's .so file, hex */
    const char *config; /* as given in the spec, "" when none */
};

size_t chain_length(const struct chain *c);
const struct chain_link_info *chain_link(const struct chain *c, size_t i);

#endif
