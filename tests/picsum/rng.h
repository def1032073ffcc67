/* rng.h -- small deterministic hashes and a PRNG shared by the image server's parts. */
#ifndef PICSUM_RNG_H
#define PICSUM_RNG_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64 finalizer: a cheap, well-mixed 64-bit hash of one word. */
static inline uint64_t rng_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Next value of a splitmix64 stream; the state may start at any value. */
static inline uint64_t rng_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return rng_mix64(*state);
}

/* Uniform double in [0, 1). */
static inline double rng_unit(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* FNV-1a over bytes, continuing from h (start with RNG_FNV_INIT). */
#define RNG_FNV_INIT 0xcbf29ce484222325ULL
static inline uint64_t rng_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif
