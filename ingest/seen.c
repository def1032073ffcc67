/* seen.c -- exact in-memory dedup: 128-bit fingerprints in open-addressing tables.
 *
 * The set is split into SEEN_SHARDS tables picked by the fingerprint's top bits, each growing on
 * its own. Growing one shard needs its old and new arrays together, so the transient cost of a
 * doubling is 1/SEEN_SHARDS of the set instead of the whole set once more. Linear probing on
 * the other half of the fingerprint; an all-zero slot is empty. */
#include "seen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SEEN_SHARDS      256
#define SEEN_SHARD_SLOTS 64 /* initial slots a shard: 256 KiB for the whole set */

struct seen_shard {
    uint64_t (*slot)[2];
    size_t mask; /* slots - 1 */
    size_t count;
};

struct seen {
    uint8_t key[16];
    size_t max_bytes, bytes, count;
    int full;
    int off; /* max_bytes was 0: remember nothing */
    struct seen_shard shard[SEEN_SHARDS];
};

#define SEEN_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SEEN_ROUND                                                                                 \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = SEEN_ROTL(v1, 13);                                                                    \
        v1 ^= v0;                                                                                  \
        v0 = SEEN_ROTL(v0, 32);                                                                    \
        v2 += v3;                                                                                  \
        v3 = SEEN_ROTL(v3, 16);                                                                    \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = SEEN_ROTL(v3, 21);                                                                    \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = SEEN_ROTL(v1, 17);                                                                    \
        v1 ^= v2;                                                                                  \
        v2 = SEEN_ROTL(v2, 32);                                                                    \
    } while (0)

static uint64_t seen_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void seen_siphash128(const uint8_t key[16], const void *data, size_t len, uint64_t out[2])
{
    const uint8_t *in = data;
    uint64_t k0 = seen_le64(key), k1 = seen_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    v1 ^= 0xee;

    size_t blocks = len / 8;
    for (size_t i = 0; i < blocks; i++) {
        uint64_t m = seen_le64(in + 8 * i);
        v3 ^= m;
        SEEN_ROUND;
        SEEN_ROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[8 * blocks + i] << (8 * i);
    v3 ^= b;
    SEEN_ROUND;
    SEEN_ROUND;
    v0 ^= b;

    v2 ^= 0xee;
    for (int i = 0; i < 4; i++)
        SEEN_ROUND;
    out[0] = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    for (int i = 0; i < 4; i++)
        SEEN_ROUND;
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}

struct seen *seen_new(size_t max_bytes, char *err, size_t errlen)
{
    struct seen *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "seen: out of memory");
        return NULL;
    }
    if (max_bytes == 0) {
        s->off = 1;
        return s;
    }
    if (max_bytes < SEEN_MIN_BYTES) {
        snprintf(err, errlen, "seen: %zu bytes is below the minimum of %u", max_bytes,
                 SEEN_MIN_BYTES);
        goto err;
    }
    if (getrandom(s->key, sizeof(s->key), 0) != (ssize_t)sizeof(s->key)) {
        snprintf(err, errlen, "seen: getrandom failed");
        goto err;
    }
    s->max_bytes = max_bytes;
    for (int i = 0; i < SEEN_SHARDS; i++) {
        s->shard[i].slot = calloc(SEEN_SHARD_SLOTS, sizeof(*s->shard[i].slot));
        if (s->shard[i].slot == NULL) {
            snprintf(err, errlen, "seen: out of memory");
            goto err;
        }
        s->shard[i].mask = SEEN_SHARD_SLOTS - 1;
        s->bytes += SEEN_SHARD_SLOTS * sizeof(*s->shard[i].slot);
    }
    return s;
err:
    seen_free(s);
    return NULL;
}

void seen_free(struct seen *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < SEEN_SHARDS; i++)
        free(s->shard[i].slot);
    free(s);
}

/* The slot holding fp, or the empty slot where it belongs. */
static uint64_t *seen_find(const struct seen_shard *sh, const uint64_t fp[2])
{
    size_t i = (size_t)fp[1] & sh->mask;
    for (;;) {
        uint64_t *slot = sh->slot[i];
        if ((slot[0] == fp[0] && slot[1] == fp[1]) || (slot[0] == 0 && slot[1] == 0))
            return slot;
        i = (i + 1) & sh->mask;
    }
}

/* Double a shard if the budget allows; -1 when it does not (or malloc fails). */
static int seen_grow(struct seen *s, struct seen_shard *sh)
{
    size_t old_slots = sh->mask + 1, new_slots = old_slots * 2;
    size_t old_bytes = old_slots * sizeof(*sh->slot), new_bytes = new_slots * sizeof(*sh->slot);
    if (s->bytes - old_bytes + new_bytes > s->max_bytes)
        return -1;
    struct seen_shard bigger = {calloc(new_slots, sizeof(*sh->slot)), new_slots - 1, sh->count};
    if (bigger.slot == NULL)
        return -1;
    for (size_t i = 0; i < old_slots; i++) {
        if (sh->slot[i][0] == 0 && sh->slot[i][1] == 0)
            continue;
        uint64_t *slot = seen_find(&bigger, sh->slot[i]);
        slot[0] = sh->slot[i][0];
        slot[1] = sh->slot[i][1];
    }
    free(sh->slot);
    *sh = bigger;
    s->bytes = s->bytes - old_bytes + new_bytes;
    return 0;
}

int seen_add(struct seen *s, const char *key, size_t len)
{
    if (s->off)
        return 0;
    uint64_t fp[2];
    seen_siphash128(s->key, key, len, fp);
    if (fp[0] == 0 && fp[1] == 0)
        fp[1] = 1; /* all-zero marks an empty slot */
    struct seen_shard *sh = &s->shard[fp[0] >> 56];
    uint64_t *slot = seen_find(sh, fp);
    if (slot[0] != 0 || slot[1] != 0)
        return 1;
    if ((sh->count + 1) * 4 > (sh->mask + 1) * 3) {
        if (seen_grow(s, sh) < 0) {
            s->full = 1;
            return 0; /* not remembered: Redis and the consumer will judge its repeats */
        }
        slot = seen_find(sh, fp);
    }
    slot[0] = fp[0];
    slot[1] = fp[1];
    sh->count++;
    s->count++;
    return 0;
}

size_t seen_count(const struct seen *s)
{
    return s->count;
}

size_t seen_bytes(const struct seen *s)
{
    return s->bytes;
}

int seen_full(const struct seen *s)
{
    return s->full;
}
