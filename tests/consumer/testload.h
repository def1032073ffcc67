/* testload.h -- what the CPU stage's tests share: plugins loaded from the build folder, chains
 * built or failed loudly, and picsum-like photographs from the image server's generator.
 * static inline, so a test includes it and links nothing more. */
#ifndef PIXFLOW_TESTLOAD_H
#define PIXFLOW_TESTLOAD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../picsum/image.h"
#include "chain.h"
#include "loader.h"

/* A loader with each of paths (relative to PIXFLOW_BUILD_DIR: a .so file loaded, a folder
 * scanned), or NULL with a line on stderr. */
static inline struct loader *testload_plugins(const char *const *paths, size_t n)
{
    const char *build = getenv("PIXFLOW_BUILD_DIR");
    struct loader *l;
    char path[4096], err[512];

    if (build == NULL) {
        fprintf(stderr, "PIXFLOW_BUILD_DIR is not set (run through ctest)\n");
        return NULL;
    }
    l = loader_new(NULL, NULL);
    for (size_t i = 0; l != NULL && i < n; i++) {
        size_t len = strlen(paths[i]);
        int rc;

        snprintf(path, sizeof(path), "%s/%s", build, paths[i]);
        rc = len > 3 && strcmp(paths[i] + len - 3, ".so") == 0
                 ? loader_load(l, path, err, sizeof(err))
                 : loader_scan(l, path, err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", path, err);
            loader_free(l);
            l = NULL;
        }
    }
    return l;
}

/* The loader of a test group: setup sets it (testload_plugins), testload_teardown frees it. */
static struct loader *testload_loader;

static inline int testload_teardown(void **unused)
{
    loader_free(testload_loader);
    testload_loader = NULL;
    return 0;
}

/* The chain spec from the group's loader; the test fails with the reason when it cannot be
 * built. */
static inline struct chain *testload_chain(const char *spec)
{
    char err[512];
    struct chain *c = loader_chain_new(testload_loader, spec, err, sizeof(err));

    if (c == NULL)
        fail_msg("%s: %s", spec, err);
    return c;
}

/* Photograph id of the image server, w x h, as it serves it (progressive JPEG, malloc'd). */
static inline void testload_photo(int id, int w, int h, unsigned char **jpg, size_t *len)
{
    char err[256];

    if (image_jpeg(id, w, h, 0, jpg, len, err, sizeof(err)) < 0)
        fail_msg("picture %d: %s", id, err);
}

/* jpg with EXIF orientation o (an APP1 after SOI): frees jpg, returns the new bytes, *len grows. */
static inline unsigned char *testload_orient(unsigned char *jpg, size_t *len, int o)
{
    unsigned char app1[] = {0xff, 0xe1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0,    0,    'I', 'I',
                            '*',  0,    8,    0,    0,   0,   1,   0,   0x12, 0x01, 3,   0,
                            1,    0,    0,    0,    0,   0,   0,   0,   0,    0,    0,   0};
    unsigned char *out = malloc(*len + sizeof(app1));

    app1[28] = (unsigned char)o; /* the SHORT value, in the entry */
    memcpy(out, jpg, 2);
    memcpy(out + 2, app1, sizeof(app1));
    memcpy(out + 2 + sizeof(app1), jpg + 2, *len - 2);
    *len += sizeof(app1);
    free(jpg);
    return out;
}

#endif
