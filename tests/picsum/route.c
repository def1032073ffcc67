/* route.c -- path classification for the image server: picsum's URL shapes, nothing else.
 * Paths shaped like sizes ("/W/H", "/W", digits first) give 400 when a size is bad, as
 * picsum.photos does; any other unknown path gives 404. */
#include "route.h"

#include <string.h>

#define ROUTE_SEGMENTS_MAX 5

struct route_segment {
    const char *s;
    size_t len;
};

/* Split "/a/b/c" into segments; one trailing '/' is tolerated. -1 if not absolute or too deep. */
static int route_split(const char *path, struct route_segment *seg, int max)
{
    size_t len = strlen(path);
    int n = 0;

    if (len == 0 || path[0] != '/')
        return -1;
    if (len > 1 && path[len - 1] == '/')
        len--;
    for (size_t i = 1; i <= len;) {
        size_t j = i;

        while (j < len && path[j] != '/')
            j++;
        if (n == max)
            return -1;
        seg[n].s = path + i;
        seg[n].len = j - i;
        n++;
        i = j + 1;
    }
    return n;
}

static int route_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Parse an unsigned decimal of exactly len bytes, refusing anything past max. */
static int route_parse_uint(const char *s, size_t len, long max, long *out)
{
    long v = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!route_is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

int route_parse_size(const char *s, size_t len, int *out)
{
    long v;

    if (route_parse_uint(s, len, ROUTE_SIZE_MAX, &v) < 0 || v < 1)
        return -1;
    *out = (int)v;
    return 0;
}

/* Drop an optional ".jpg" from the last segment. */
static void route_strip_ext(struct route_segment *last)
{
    if (last->len > 4 && memcmp(last->s + last->len - 4, ".jpg", 4) == 0)
        last->len -= 4;
}

static int route_seg_is(const struct route_segment *seg, const char *word)
{
    return seg->len == strlen(word) && memcmp(seg->s, word, seg->len) == 0;
}

/* "W/H" or "W" (square) into r; the caller has stripped the extension. */
static enum route_kind route_sizes(const struct route_segment *seg, int n, struct route *r)
{
    if (route_parse_size(seg[0].s, seg[0].len, &r->width) < 0)
        return ROUTE_BAD_SIZE;
    if (n == 1) {
        r->height = r->width;
        return ROUTE_RANDOM;
    }
    if (route_parse_size(seg[1].s, seg[1].len, &r->height) < 0)
        return ROUTE_BAD_SIZE;
    return ROUTE_RANDOM;
}

static enum route_kind route_control(const struct route_segment *seg, int n)
{
    if (n != 2)
        return ROUTE_NOT_FOUND;
    if (route_seg_is(&seg[1], "stats"))
        return ROUTE_CONTROL_STATS;
    if (route_seg_is(&seg[1], "reset"))
        return ROUTE_CONTROL_RESET;
    if (route_seg_is(&seg[1], "fault"))
        return ROUTE_CONTROL_FAULT;
    return ROUTE_NOT_FOUND;
}

static enum route_kind route_image(struct route_segment *seg, int n, struct route *r)
{
    long id;

    if (n != 3 && n != 4)
        return ROUTE_NOT_FOUND;
    route_strip_ext(&seg[n - 1]);
    if (route_parse_uint(seg[1].s, seg[1].len, ROUTE_IMAGE_COUNT - 1, &id) < 0)
        return ROUTE_NOT_FOUND;
    r->id = (int)id;
    if (route_sizes(seg + 2, n - 2, r) == ROUTE_BAD_SIZE)
        return ROUTE_BAD_SIZE;
    return ROUTE_IMAGE;
}

enum route_kind route_parse(const char *path, struct route *r)
{
    struct route_segment seg[ROUTE_SEGMENTS_MAX];
    int n = route_split(path, seg, ROUTE_SEGMENTS_MAX);

    memset(r, 0, sizeof(*r));
    r->kind = ROUTE_NOT_FOUND;
    if (n < 1)
        return r->kind;
    if (route_seg_is(&seg[0], "__control"))
        r->kind = route_control(seg, n);
    else if (route_seg_is(&seg[0], "id"))
        r->kind = route_image(seg, n, r);
    else if ((n == 1 || n == 2) && seg[0].len > 0 &&
             (route_is_digit(seg[0].s[0]) || seg[0].s[0] == '-')) {
        route_strip_ext(&seg[n - 1]);
        r->kind = route_sizes(seg, n, r);
    }
    return r->kind;
}
