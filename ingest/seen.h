/* seen.h -- the URLs this run has already taken, to drop repeats inside its own input.
 *
 * Exact up to 128-bit fingerprints: each normalized URL is stored as its keyed SipHash-2-4-128
 * (random key per run, so a catalog cannot be crafted to collide). Two distinct URLs share a
 * fingerprint with probability n^2 / 2^129: about 1e-25 for 10 million URLs. Any such false
 * "repeat" would drop a URL, which is why a 64-bit hash or a Bloom filter is not used.
 *
 * Memory: 16 bytes a slot, tables kept at most 3/4 full, sizes in powers of two:
 *   1M distinct URLs -> 32 MiB, 10M -> 256 MiB (worst case just past a doubling: 2x that).
 * Above `max_bytes` the set stops remembering new URLs (it keeps answering for those it holds):
 * repeats it no longer catches are left to Redis and the consumer's SADD, nothing is lost. */
#ifndef PIXFLOW_SEEN_H
#define PIXFLOW_SEEN_H

#include <stddef.h>
#include <stdint.h>

struct seen;

/* max_bytes bounds the tables (at least SEEN_MIN_BYTES); 0 gives a set that remembers nothing. */
#define SEEN_MIN_BYTES (1u << 20)
struct seen *seen_new(size_t max_bytes, char *err, size_t errlen);
void seen_free(struct seen *s);

/* 1 when `key` was added before (a repeat); 0 when it is new (and now remembered, if room). */
int seen_add(struct seen *s, const char *key, size_t len);

size_t seen_count(const struct seen *s); /* URLs remembered */
size_t seen_bytes(const struct seen *s); /* table memory in use */
int seen_full(const struct seen *s);     /* 1 once a new URL could not be remembered */

/* SipHash-2-4 with 128-bit output (Aumasson & Bernstein), exposed for its test vectors. */
void seen_siphash128(const uint8_t key[16], const void *data, size_t len, uint64_t out[2]);

#endif
