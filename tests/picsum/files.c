/* files.c -- a folder of pictures held in memory, numbered in name order. With --files, the
 * picture hop of /W/H serves file number W whatever its contents (hostile pictures included),
 * and the picture faults (truncate, slow) still apply to it on the way out. */
#include "files.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct files_entry {
    char *name;
    unsigned char *data;
    size_t len;
};

struct files {
    struct files_entry *v;
    size_t n;
};

static int files_by_name(const void *a, const void *b)
{
    return strcmp(((const struct files_entry *)a)->name, ((const struct files_entry *)b)->name);
}

static int files_read(const char *dir, struct files_entry *e, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, e->name);
    fp = fopen(path, "rb");
    if (fp == NULL || fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a readable regular file", path);
        goto err;
    }
    e->len = (size_t)st.st_size;
    e->data = malloc(e->len > 0 ? e->len : 1);
    if (e->data == NULL || fread(e->data, 1, e->len, fp) != e->len) {
        snprintf(err, errlen, "%s: cannot read %zu bytes", path, e->len);
        goto err;
    }
    fclose(fp);
    return 0;
err:
    if (fp != NULL)
        fclose(fp);
    return -1;
}

struct files *files_load(const char *dir, char *err, size_t errlen)
{
    struct files *f = calloc(1, sizeof(*f));
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t cap = 0;

    if (f == NULL || d == NULL) {
        snprintf(err, errlen, "%s: cannot open the folder", dir);
        goto err;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (f->n == cap) {
            struct files_entry *v = realloc(f->v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

            if (v == NULL)
                goto nomem;
            f->v = v;
        }
        memset(&f->v[f->n], 0, sizeof(f->v[f->n]));
        f->v[f->n].name = strdup(de->d_name);
        if (f->v[f->n++].name == NULL)
            goto nomem;
    }
    closedir(d);
    d = NULL;
    qsort(f->v, f->n, sizeof(*f->v), files_by_name);
    for (size_t i = 0; i < f->n; i++)
        if (files_read(dir, &f->v[i], err, errlen) < 0)
            goto err;
    return f;
nomem:
    snprintf(err, errlen, "%s: out of memory", dir);
err:
    if (d != NULL)
        closedir(d);
    files_free(f);
    return NULL;
}

void files_free(struct files *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].name);
        free(f->v[i].data);
    }
    free(f->v);
    free(f);
}

int files_get(const struct files *f, long n, const unsigned char **data, size_t *len)
{
    if (f == NULL || n < 1 || (size_t)n > f->n)
        return -1;
    *data = f->v[n - 1].data;
    *len = f->v[n - 1].len;
    return 0;
}
