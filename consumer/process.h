/* process.h -- the CPU stage of one picture: check, decode, transform, encode, digest. */
#ifndef PIXFLOW_PROCESS_H
#define PIXFLOW_PROCESS_H

#include <stddef.h>

#include "chain.h"
#include "image.h"

/* picsum serves up to 5000 x 5000; leave room for other sources without allowing bombs. */
#define PROCESS_DEFAULT_MAX_PIXELS    25000000 /* the worker's --max-pixels default too */
#define PROCESS_DEFAULT_MAX_DIMENSION 20000L

#define PROCESS_DEFAULT_DECODE_MEMORY (160L << 20)

struct process_limits {
    long max_pixels;    /* width * height, checked on the header before decoding; <= 0: none */
    long max_dimension; /* width and height each; <= 0: none */
    struct image_limits image; /* scans, CPU time, decoder working memory; zeros: none */
    long decode_memory; /* bytes all pictures in the stage may hold at once: process_budget_init */
};

/* Where the time went, for the worker's counters and the benchmark. */
struct process_timing {
    long decode_us;    /* header checks and decoding */
    long transform_us; /* the chain */
    long encode_us;    /* PNG, JPEG or WebP; for a JPEG kept in the DCT domain, all of its work */
    long digest_us;    /* SHA-256 of both the download and the stored bytes, base64 */
};

struct process_out {    /* everything the store needs */
    const char *format; /* of the stored bytes: "png", "jpeg" or "webp" (the chain's, format.h) */
    unsigned char *png; /* the stored bytes, in `format` (named png for the default format) */
    size_t png_len;
    char sha256[65]; /* of png, hex: the document's _id */
    char *b64;       /* png in base64, NUL-terminated */
    size_t b64_len;
    int width, height, channels; /* of the stored picture */
    char origin_format[8];       /* "jpeg", "png" */
    int origin_width, origin_height;
    int orientation; /* EXIF orientation of the download (1..8); the stored picture is upright */
    char origin_sha256[65];       /* of the downloaded bytes */
    struct image_decoder decoder; /* what made the pixels from the download (the lineage's) */
    char encoder[32];             /* the format with its settings: "png:level=0", "jpeg:quality=90",
                                     "jpeg:coefficients" (jpegw.h), "webp:lossless" */
    struct process_timing timing;
};

enum process_status { PROCESS_OK, PROCESS_PERMANENT, PROCESS_TRANSIENT };

/* Runs the whole stage on the downloaded bytes (lim NULL: no limits). Header first: a picture over
 * the limits is refused before any pixel memory exists. The picture is decoded straight to the
 * channels the chain's first link takes (chain_input_channels()), a colour JPEG to its luma
 * plane and shrunk by DCT scaling when the chain allows it (chain_takes_luma(),
 * chain_shrink_limit()), and encoded in the chain's format (chain_format()); a gray-only chain
 * ending in `jpeg` with no quality keeps a JPEG's luma coefficients, undecoded (jpegw.h).
 * chain NULL means no transform and PNG.
 * PROCESS_OK fills *out (free it with process_out_free()). Otherwise reason gets a short stable
 * code for counters and dead letters and err the detail:
 *   permanent: not_image, unsupported_format, corrupt_image, too_many_pixels, too_many_scans,
 *              decode_budget, inflate_bomb, out_of_memory, transform_failed, encode_failed
 * Out of memory is permanent: with the decode memory budget in place, a picture that still
 * exhausts memory would do it again on every retry (dead --replay can try it once more).
 * Before decoding, the picture's memory (process_cost()) is taken from the budget set by
 * process_budget_init(), waiting while other pictures hold it. Safe to call from many threads. */
enum process_status process_run(const struct chain *chain, const struct process_limits *lim,
                                const unsigned char *data, size_t len, struct process_out *out,
                                char *reason, size_t rlen, char *err, size_t errlen);

/* The same stage for several chains (the renditions of one download, at most 64): one check,
 * one decode for the chains that decode alike (a chain gets the decode it would get alone: a
 * luma plane, a DCT-shrunk picture, so its bytes never depend on the other chains), each chain on
 * its own copy and its own encoding into outs[i] (outs has n elements; each names the download).
 * The first failure fails the whole call, reason and err saying which. */
enum process_status process_run_all(const struct chain *const *chains, int n,
                                    const struct process_limits *lim, const unsigned char *data,
                                    size_t len, struct process_out *outs, char *reason, size_t rlen,
                                    char *err, size_t errlen);

void process_out_free(struct process_out *out);

struct store_doc;
/* The stored picture's own fields of d (its bytes, base64, hash, format, size, decoder and
 * encoder) from out, which must outlive d. The rest of d is the caller's. */
void process_out_doc(const struct process_out *out, struct store_doc *d);

/* Bytes the stage takes from the budget to decode a picture of this header to `channels` and run
 * the chain: the larger of pixels + decoder working memory (+ a copy to turn it upright) and
 * pixels in + pixels out. After the chain this is exchanged for the output's pixels + its PNG +
 * the base64 of that (see README, "Memory"). */
size_t process_cost(const struct image_info *info, int channels);

/* Caps the bytes all concurrent process_run() calls may hold (0: no cap). A picture costing more
 * than the whole budget is refused as too_many_pixels. Call before any process_run(). */
void process_budget_init(size_t bytes);

#endif
