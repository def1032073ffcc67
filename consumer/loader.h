/* loader.h -- transform plugins: load and check .so files, build chains, run them on pictures. */
#ifndef PIXFLOW_LOADER_H
#define PIXFLOW_LOADER_H

#include <stddef.h>

#include <pixflow/plugin.h>

struct loader;
struct chain;

/* Where counters go: transform:<name>:ok|failed|usec from chains, transform:<name>:<counter>
 * from plugins. Called from pool threads, once per counter per picture: keep it cheap. */
typedef void (*loader_counter_fn)(void *arg, const char *name, long long delta);

struct loader_plugin_info {
    const char *name, *version, *description; /* description may be NULL */
    const char *path;                         /* as loaded */
    const char *sha256;                       /* of the .so file, hex */
    unsigned abi_major, abi_minor;
    unsigned flags;  /* PIXFLOW_THREAD_SAFE | ... */
    unsigned inputs; /* PIXFLOW_INPUT_* */
};

struct loader_rejected {
    const char *path;
    const char *error; /* the reason, as logged */
};

/* counter may be NULL (counters are dropped). NULL when out of memory. */
struct loader *loader_new(loader_counter_fn counter, void *arg);
/* Unloads every plugin: call it after chain_free() of every chain built from this loader. */
void loader_free(struct loader *l);

/* Loads one plugin: dlopen(RTLD_NOW | RTLD_LOCAL), then the checks, each refusal with one
 * reason: no entry symbol, ABI major other than this host's, minor newer than this host's,
 * descriptor smaller than its minor requires, invalid name, no inputs, missing apply (or only
 * one of thread_init/thread_destroy), a name already loaded. Logs event=plugin_loaded or
 * event=plugin_rejected plugin=<path> error="<reason>". 0, or -1 with the reason in err; a
 * rejected plugin is unloaded and changes nothing else. */
int loader_load(struct loader *l, const char *path, char *err, size_t errlen);

/* Loads every *.so of dir, in name order (so the first of two duplicates is the one kept). The
 * number of plugins loaded, or -1 with err when dir cannot be read. Rejected files are logged,
 * listed by loader_rejected(), and do not stop the scan. */
int loader_scan(struct loader *l, const char *dir, char *err, size_t errlen);

size_t loader_count(const struct loader *l);
const struct loader_plugin_info *loader_plugin(const struct loader *l, size_t i);
size_t loader_rejected_count(const struct loader *l);
const struct loader_rejected *loader_rejected(const struct loader *l, size_t i);

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
