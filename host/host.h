/* host.h -- what the plugin host's files share and nothing outside host/ may use: a loaded
 * plugin's entry, the loader, and the blocks host->alloc() hands out during one apply(). */
#ifndef PIXFLOW_HOST_H
#define PIXFLOW_HOST_H

#include <stddef.h>

#include "digest.h"
#include "loader.h"

#define LOADER_NAME_MAX    32
#define LOADER_COUNTER_MAX 32
#define LOADER_ERR_MAX     256
#define LOADER_FILE_MAX    (256L << 20) /* largest plugin file read */

struct loader;
struct loader_entry;

struct loader_host {
    struct pixflow_host pub; /* first: plugins only see this part */
    struct loader *loader;
    struct loader_entry *entry;
};

struct loader_entry {
    struct loader_plugin_info info;
    struct pixflow_plugin desc; /* the plugin's descriptor, zero beyond its struct_size */
    struct loader_host host;
    void *handle;
    char *path;
    char sha256[DIGEST_HEX_LEN + 1];
};

struct loader {
    struct loader_entry **plugins;
    size_t n, cap;
    struct loader_rejected *rejected;
    size_t nrejected, caprejected;
    loader_counter_fn counter;
    void *counter_arg;
    char tmpdir[256]; /* the private folder of the copy being loaded; "" between loads */
};

/* Blocks host->alloc() handed out during the current apply() on this thread. */
struct chain_block {
    void *ptr;
    size_t size;
};

struct chain_allocs {
    struct chain_block *blocks;
    size_t n, cap;
};

/* The blocks of the apply() running on this thread; NULL outside one (alloc.c). */
extern _Thread_local struct chain_allocs *host_allocs;

/* The host table's alloc and free (alloc.c). */
void *host_alloc(const struct pixflow_host *h, size_t size);
void host_free(const struct pixflow_host *h, void *ptr);
/* Forgets block i of a (it now belongs to the chain, or is freed). */
void host_allocs_forget(struct chain_allocs *a, size_t i);

/* The loaded plugin called name (len bytes), or NULL (loader.c). */
const struct loader_entry *loader_find(const struct loader *l, const char *name, size_t len);
/* "grayscale, resize" for error messages (loader.c). */
void loader_names(const struct loader *l, char *buf, size_t len);

#endif
