/* route.h -- map a request path to what the image server should do with it. */
#ifndef PICSUM_ROUTE_H
#define PICSUM_ROUTE_H

#include <stddef.h>

#define ROUTE_SIZE_MAX    5000 /* largest width or height served */
#define ROUTE_IMAGE_COUNT 1085 /* picture ids are 0 .. ROUTE_IMAGE_COUNT - 1 */

enum route_kind {
    ROUTE_NOT_FOUND,     /* 404 */
    ROUTE_BAD_SIZE,      /* 400 "Invalid size" */
    ROUTE_RANDOM,        /* /W/H, /W: 302 to one picture */
    ROUTE_IMAGE,         /* /id/N/W/H, /id/N/W: the picture itself */
    ROUTE_CONTROL_STATS, /* /__control/stats */
    ROUTE_CONTROL_RESET, /* /__control/reset */
    ROUTE_CONTROL_FAULT, /* /__control/fault */
};

struct route {
    enum route_kind kind;
    int id; /* ROUTE_IMAGE only */
    int width;
    int height;
};

/* Classify a raw (undecoded) path, without its query. Always fills r and returns r->kind. */
enum route_kind route_parse(const char *path, struct route *r);

/* Parse a decimal size of exactly len bytes: 0 and *out set when it is 1..ROUTE_SIZE_MAX. */
int route_parse_size(const char *s, size_t len, int *out);

#endif
