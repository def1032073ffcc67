/* transforms.c -- load a chain generation; reference-count it across a reload. */
#include "transforms.h"
#include "names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_FILE_MAX 4096

/* "@FILE": the chain is the file's content, surrounding whitespace dropped. */
static char *transforms_spec(const char *spec, char *err, size_t errlen)
{
    if (spec[0] != '@')
        return strdup(spec);
    FILE *f = fopen(spec + 1, "r");
    if (f == NULL) {
        snprintf(err, errlen, "transforms file %s: %s", spec + 1, strerror(errno));
        return NULL;
    }
    char *text = calloc(1, SPEC_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, SPEC_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (text == NULL || n > SPEC_FILE_MAX) {
        snprintf(err, errlen, "transforms file %s: %s", spec + 1,
                 text ? "longer than 4096 bytes" : "out of memory");
        free(text);
        return NULL;
    }
    size_t start = strspn(text, " \t\r\n");
    while (n > start && strchr(" \t\r\n", text[n - 1]))
        n--;
    text[n] = '\0';
    memmove(text, text + start, n - start + 1);
    return text;
}

struct transforms *transforms_load(const char *plugin_path, const char *spec,
                                   loader_counter_fn counter, void *arg, char *err, size_t errlen)
{
    struct transforms *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->refs = 1;
    t->spec = transforms_spec(spec, err, errlen);
    if (t->spec == NULL)
        goto err;
    t->loader = loader_new(counter, arg);
    if (t->loader == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    if (loader_scan(t->loader, plugin_path, err, errlen) < 0)
        goto err;
    t->chain = loader_chain_new(t->loader, t->spec, err, errlen);
    if (t->chain == NULL)
        goto err;
    t->nlineage = (int)chain_length(t->chain);
    t->lineage = calloc((size_t)t->nlineage + 1, sizeof(*t->lineage));
    if (t->lineage == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    for (int i = 0; i < t->nlineage; i++) {
        const struct chain_link_info *li = chain_link(t->chain, (size_t)i);
        t->lineage[i] = (struct lineage_link){li->name, li->version, li->sha256, li->config};
    }
    return t;
err:
    t->refs = 1;
    transforms_unref(t);
    return NULL;
}

struct transforms *transforms_ref(struct transforms *t)
{
    t->refs++;
    return t;
}

void transforms_unref(struct transforms *t)
{
    if (t == NULL || --t->refs > 0)
        return;
    chain_free(t->chain); /* the chain before the plugins it runs */
    loader_free(t->loader);
    free(t->lineage);
    free(t->spec);
    free(t);
}

int rendition_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= RENDITION_NAME_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n &&
           strcmp(name, REND_DEFAULT) != 0;
}
