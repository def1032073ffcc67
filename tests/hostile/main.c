/* main.c -- pixflow-hostile: writes the hostile pictures to a folder, with a manifest.
 *   pixflow-hostile [--big] DIR
 * DIR/manifest.tsv has one line per file: name, expected reason ("stored" when it must be). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostile.h"

static int hostile_write(const char *dir, const char *name, const unsigned char *d, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(d, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int big = argc == 3 && strcmp(argv[1], "--big") == 0;
    const char *dir = argv[argc - 1];
    const struct hostile_case *c;
    char manifest[4096];
    FILE *m;

    if (argc != 2 + big) {
        fprintf(stderr, "usage: pixflow-hostile [--big] DIR\n");
        return 2;
    }
    snprintf(manifest, sizeof(manifest), "%s/manifest.tsv", dir);
    m = fopen(manifest, "w");
    if (m == NULL) {
        perror(manifest);
        return 1;
    }
    for (c = hostile_cases(big); c->file != NULL; c++) {
        size_t n = 0;
        unsigned char *d = c->make(&n);

        if (d == NULL || hostile_write(dir, c->file, d, n) < 0) {
            fprintf(stderr, "pixflow-hostile: cannot build %s\n", c->file);
            return 1;
        }
        free(d);
        fprintf(m, "%s\t%s\t%zu\t%s\n", c->file, c->reason ? c->reason : "stored", n, c->what);
    }
    return fclose(m) == 0 ? 0 : 1;
}
