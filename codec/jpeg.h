/* jpeg.h -- JPEG header reading and bounded decoding through libjpeg-turbo (image.c's JPEG half).
 */
#ifndef PIXFLOW_JPEG_H
#define PIXFLOW_JPEG_H

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <time.h>

#include <jpeglib.h>

#include "image.h"

/* libjpeg's error and progress handling under pixflow's limits, shared by reading (jpeg.c) and
 * writing (jpegw.c). libjpeg reports errors through longjmp; the guard keeps the message on the
 * caller's stack, so threads never share one. Warnings about damaged data are errors; the
 * progress monitor enforces lim's CPU time and scans. */
struct jpeg_guard {
    struct jpeg_error_mgr pub; /* first: libjpeg hands back a pointer to it */
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    enum image_status status;
    char msg[JMSG_LENGTH_MAX];
    const struct image_limits *lim;
    struct timespec cpu_start;
};

/* Sets g up (its CPU clock starts now) and returns the error manager for c->err; the caller
 * sets g->jump with setjmp() and may point c->progress at &g->progress. */
struct jpeg_error_mgr *jpeg_guard_init(struct jpeg_guard *g, const struct image_limits *lim);
/* Ends the libjpeg call in progress: longjmp to g->jump with st and msg. */
void jpeg_guard_fail(j_common_ptr c, enum image_status st, const char *msg);

/* jpeg_create_decompress, the memory source and jpeg_read_header, APP1 (EXIF) markers kept;
 * under the guard. */
void jpeg_open(struct jpeg_decompress_struct *c, const unsigned char *data, size_t len);

/* The scans counted on the raw markers before libjpeg sees the file: IMAGE_CORRUPT when
 * truncated, IMAGE_TOO_MANY_SCANS over lim. */
enum image_status jpeg_check_scans(const unsigned char *data, size_t len,
                                   const struct image_limits *lim, char *err, size_t errlen);

/* Reads the markers up to the first scan: size, components, EXIF orientation. No pixel memory. */
enum image_status jpeg_probe(const unsigned char *data, size_t len, struct image_info *info,
                             char *err, size_t errlen);

/* libjpeg-turbo's version as built against ("2.1.5"): the 2.x API has no runtime query. */
#define JPEG_STR_(x)         #x
#define JPEG_STR(x)          JPEG_STR_(x)
#define JPEG_LIBRARY         "libjpeg-turbo"
#define JPEG_LIBRARY_VERSION JPEG_STR(LIBJPEG_TURBO_VERSION)

/* Decodes as req asks (image.h) under lim (scans, CPU time, libjpeg's working memory), leaving
 * the picture as stored (image.c turns it upright), and fills *dec with the path taken. out->pixels
 * comes from alloc; a shrunk picture has out->source_width/height set to the stored size. */
enum image_status jpeg_decode(const unsigned char *data, size_t len, const struct image_info *info,
                              const struct image_request *req, const struct image_limits *lim,
                              void *(*alloc)(size_t), struct pixflow_image *out,
                              struct image_decoder *dec, char *err, size_t errlen);

/* Start-of-scan markers in the file, counted without decoding (stops at EOI); -1: truncated. */
long jpeg_count_scans(const unsigned char *d, size_t len);

#endif
