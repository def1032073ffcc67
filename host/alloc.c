/* alloc.c -- host->alloc() and host->free() for plugins.
 *
 * A plugin may answer with its input, a part of its input (in place, or a view such as a crop),
 * or a buffer from host->alloc(). To tell these apart and to free what a failed apply()
 * allocated, host->alloc() records its blocks in a list that chain_apply() points host_allocs at
 * for the duration of one apply(). */
#include "host.h"

#include <stdlib.h>

_Thread_local struct chain_allocs *host_allocs;

void *host_alloc(const struct pixflow_host *h, size_t size)
{
    struct chain_allocs *a = host_allocs;
    void *p = malloc(size > 0 ? size : 1);

    if (p == NULL || a == NULL)
        return p;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 4;
        struct chain_block *nb = realloc(a->blocks, cap * sizeof(*nb));

        if (nb == NULL) {
            free(p);
            return NULL;
        }
        a->blocks = nb;
        a->cap = cap;
    }
    a->blocks[a->n].ptr = p;
    a->blocks[a->n].size = size;
    a->n++;
    return p;
}

void host_allocs_forget(struct chain_allocs *a, size_t i)
{
    a->blocks[i] = a->blocks[--a->n];
}

void host_free(const struct pixflow_host *h, void *ptr)
{
    struct chain_allocs *a = host_allocs;

    if (ptr == NULL)
        return;
    for (size_t i = 0; a != NULL && i < a->n; i++) {
        if (a->blocks[i].ptr == ptr) {
            host_allocs_forget(a, i);
            break;
        }
    }
    free(ptr);
}
