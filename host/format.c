/* format.c -- output formats named by a chain's last element, and their keys. The host encodes
 * these itself (consumer/process.c), so their names are not plugin names: the loader refuses a
 * plugin called png, jpeg or webp. */
#include "format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixflow/plugin.h>

#include "png.h"

static const struct {
    const char *name;
    enum format_kind kind;
} format_names[] = {{"png", FORMAT_PNG}, {"jpeg", FORMAT_JPEG}, {"webp", FORMAT_WEBP}};

#define FORMAT_COUNT (sizeof(format_names) / sizeof(format_names[0]))

void format_default(struct format *f)
{
    memset(f, 0, sizeof(*f));
    f->kind = FORMAT_PNG;
    f->name = "png";
    f->level = PNG_DEFAULT_LEVEL;
}

int format_reserved(const char *name, size_t len)
{
    for (size_t i = 0; i < FORMAT_COUNT; i++)
        if (strlen(format_names[i].name) == len && memcmp(format_names[i].name, name, len) == 0)
            return 1;
    return 0;
}

/* An integer lo..hi from a value of vlen bytes; -1 when it is not one. */
static long format_int(const char *v, size_t vlen, long lo, long hi)
{
    char buf[16], *end;
    long n;

    if (vlen == 0 || vlen >= sizeof(buf))
        return -1;
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    n = strtol(buf, &end, 10);
    return *end == '\0' && n >= lo && n <= hi ? n : -1;
}

int format_parse(const char *name, const char *config, struct format *f, char *err, size_t errlen)
{
    const char *cur = config, *k, *v;
    size_t i, klen, vlen;
    int rc;

    for (i = 0; i < FORMAT_COUNT && strcmp(format_names[i].name, name) != 0; i++)
        ;
    if (i == FORMAT_COUNT)
        return 0;
    format_default(f);
    f->kind = format_names[i].kind;
    f->name = format_names[i].name;
    while ((rc = pixflow_config_next(&cur, &k, &klen, &v, &vlen)) == 1) {
        long n = -1;

        if (f->kind == FORMAT_PNG && klen == 5 && memcmp(k, "level", 5) == 0) {
            n = format_int(v, vlen, PNG_LEVEL_HUFFMAN, 12);
            f->level = (int)n;
        } else if (f->kind == FORMAT_JPEG && klen == 7 && memcmp(k, "quality", 7) == 0) {
            n = format_int(v, vlen, 1, 100);
            f->quality = (int)n;
        } else {
            snprintf(err, errlen, "%s: unknown key \"%.*s\" (%s)", name, (int)klen, k,
                     f->kind == FORMAT_PNG    ? "png takes level=0..12"
                     : f->kind == FORMAT_JPEG ? "jpeg takes quality=1..100"
                                              : "webp takes no key");
            return -1;
        }
        if (n < 0) {
            snprintf(err, errlen, "%s: %.*s=%.*s is out of range (%s)", name, (int)klen, k,
                     (int)vlen, v, f->kind == FORMAT_PNG ? "0..12" : "1..100");
            return -1;
        }
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: malformed options \"%s\" (want key=value)", name, config);
        return -1;
    }
    return 1;
}
