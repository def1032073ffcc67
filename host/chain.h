/* chain.h -- a chain of loaded transforms (loader.h): built from a spec, run on pictures. */
#ifndef PIXFLOW_CHAIN_H
#define PIXFLOW_CHAIN_H

#include <stddef.h>

#include <pixflow/plugin.h>

#include "format.h"
#include "loader.h"

struct chain;

/* Builds the chain "name[:config][,name[:config]]..." (see plugin.h), calling init() of each link
 * with its config. The last element may instead name the output format (format.h: png,
 * png:level=N, jpeg, jpeg:quality=Q, webp); PNG at its default level otherwise. An empty spec is
 * the empty chain (pictures stored as decoded). NULL with err: an unknown name (err lists what is
 * loaded), a format anywhere but last or with a bad key, a malformed spec, an init() failure. */
struct chain *loader_chain_new(struct loader *l, const char *spec, char *err, size_t errlen);
/* destroy()s every link; call it once no thread runs chain_apply() any more. */
void chain_free(struct chain *c);

/* Channels (1, 3 or 4) to decode a picture stored with `stored` channels (1..4, 2 being gray +
 * alpha) to, so it reaches the first link without conversion when that is lossless. When the
 * first link only takes fewer channels, this returns the stored count (2 counts as 4) and
 * chain_apply() reduces it with pixflow_luma(), never the decoder's own approximation. A NULL
 * chain is the empty chain. */
int chain_input_channels(const struct chain *c, int stored);

/* The chain's output format; a NULL chain's is the default PNG. */
const struct format *chain_format(const struct chain *c);

/* The first link takes a colour picture's luma plane as the decoder makes it, instead of a
 * colour picture (PIXFLOW_ACCEPT_LUMA): decode a colour JPEG to gray. */
int chain_takes_luma(const struct chain *c);

/* Every link only makes gray (PIXFLOW_ACCEPT_LUMA), and there is at least one: the rendition of
 * a picture is its luma and nothing else. */
int chain_gray_only(const struct chain *c);

/* How far the decoder may shrink a width x height (upright) picture for this chain: to no less
 * than *min_width x *min_height, twice what the link that takes shrunk pictures makes of the
 * whole one (PIXFLOW_ACCEPT_SHRUNK: the first link, or the first after PIXFLOW_ACCEPT_LUMA links
 * when gray says the picture is decoded to one channel). 0 x 0: decode it whole. */
void chain_shrink_limit(const struct chain *c, uint32_t width, uint32_t height, int gray,
                        uint32_t *min_width, uint32_t *min_height);

enum chain_status {
    CHAIN_OK,
    CHAIN_FAILED, /* a link refused the picture or broke the ABI: permanent */
    CHAIN_NOMEM,  /* out of memory between links: worth retrying */
};

/* Runs every link on `in`, converting channels between links as each accepts (plugin.h), and
 * counts transform:<name>:ok|failed|usec. When in->source_width/height are set (the decoder
 * shrank the picture within chain_shrink_limit()), the link that takes shrunk pictures gets them
 * and must make what its output_size() says of the whole picture. Takes in->pixels, which must be
 * malloc'd with at least stride * height bytes: it is reused or freed whatever the result. On
 * CHAIN_OK, *out is the result, tightly packed (stride == width * channels), out->pixels malloc'd
 * for the caller to free. Otherwise err names the link. Safe to call from many threads at once. */
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
