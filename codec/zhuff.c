/* zhuff.c -- zlib streams made of Huffman-coded literals (see zhuff.h), and of runs: a byte
 * repeated ZHUFF_MINRUN times or more (a flat area, whose filtered rows are zeros) is written as
 * matches at distance 1, so a flat picture still compresses as deflate would. Runs are looked
 * for only at 8-byte steps (one comparison per 8 bytes). Each block of ZHUFF_BLOCK input bytes
 * is counted, given a length-limited Huffman code (a block adapts to the part of the picture it
 * covers), and written as a dynamic deflate block; a block that would not shrink is stored. A
 * literal costs one table lookup and one add to a 64-bit bit buffer. */
#include "zhuff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

#define ZHUFF_BLOCK   32768 /* input bytes per block, as zlib's Huffman-only blocks at memLevel 9 */
#define ZHUFF_NLIT    286   /* the 256 literals, end-of-block, and the 29 length codes */
#define ZHUFF_NDIST   2     /* two unused distance codes of one bit, as zlib writes them */
#define ZHUFF_NLENS   (ZHUFF_NLIT + ZHUFF_NDIST)
#define ZHUFF_EOB     256
#define ZHUFF_MAXBITS 15 /* deflate's limit for literal codes */
#define ZHUFF_CLBITS  7  /* and for the code-length code */
#define ZHUFF_NCL     19
#define ZHUFF_MINRUN  16 /* shorter runs cost less as literals in a photograph's residuals */
#define ZHUFF_MAXRUNS (ZHUFF_BLOCK / ZHUFF_MINRUN + 1)

/* RFC 1951 §3.2.5: match lengths 3..258 as symbol 257 + code, base and extra bits. */
static const uint16_t zhuff_len_base[29] = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                            15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                            67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t zhuff_len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                            2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};

static int zhuff_len_code(unsigned len)
{
    int c = 28;

    while (zhuff_len_base[c] > len)
        c--;
    return c;
}

/* The next match of a run with `left` bytes to go (left >= 3): 3..258 bytes, leaving 0 or 3+. */
static unsigned zhuff_chunk(size_t left)
{
    if (left <= 258)
        return (unsigned)left;
    return left - 258 < 3 ? (unsigned)(left - 3) : 258;
}

struct zhuff_run {
    size_t at, len; /* in the block */
};

static inline uint64_t zhuff_load8(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
}

/* The runs of a block (in[0..len), in[-1] readable when prev_ok), each of ZHUFF_MINRUN bytes or
 * more equal to the byte before it, found at 8-byte steps; literals between them are counted
 * into hist. Returns how many. */
static int zhuff_runs(const unsigned char *in, size_t len, int prev_ok, struct zhuff_run *runs,
                      uint32_t hist[4][256])
{
    size_t i = prev_ok ? 0 : 1, lit = 0;
    int n = 0;

    while (i + ZHUFF_MINRUN <= len) {
        uint64_t want = 0x0101010101010101ull * in[(ptrdiff_t)i - 1];

        if (zhuff_load8(in + i) != want || zhuff_load8(in + i + 8) != want) {
            i += 8;
            continue;
        }
        size_t j = i + 16;

        while (j + 8 <= len && zhuff_load8(in + j) == want)
            j += 8;
        while (j < len && in[j] == in[i])
            j++;
        for (size_t k = lit; k < i; k++)
            hist[k & 3][in[k]]++;
        runs[n++] = (struct zhuff_run){i, j - i};
        i = lit = j;
    }
    for (size_t k = lit; k < len; k++)
        hist[k & 3][in[k]]++;
    return n;
}

/* ---- the bit writer: LSB first; zhuff_put stores 32 bits at a time, zhuff_flush 8 bytes
 * whatever it holds (the output has 8 bytes of slack) and keeps the last bits not yet a byte ----
 */

struct zhuff_out {
    unsigned char *p;
    uint64_t acc;
    unsigned n;
};

static inline void zhuff_put(struct zhuff_out *o, uint32_t bits, unsigned len)
{
    o->acc |= (uint64_t)bits << o->n;
    o->n += len;
    if (o->n >= 32) {
        o->p[0] = (unsigned char)o->acc;
        o->p[1] = (unsigned char)(o->acc >> 8);
        o->p[2] = (unsigned char)(o->acc >> 16);
        o->p[3] = (unsigned char)(o->acc >> 24);
        o->p += 4;
        o->acc >>= 32;
        o->n -= 32;
    }
}

static inline void zhuff_flush(struct zhuff_out *o)
{
    uint64_t a = o->acc, le = a;
    unsigned bytes = o->n >> 3;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    le = __builtin_bswap64(a);
#endif
    memcpy(o->p, &le, 8); /* one unaligned store */
    o->p += bytes;
    o->acc = bytes == 8 ? 0 : a >> 8 * bytes;
    o->n &= 7;
}

/* Literals in[from..to): three codes of at most 15 bits between flushes fit the 64-bit buffer
 * with the 7 bits a flush may keep. */
static void zhuff_literals(struct zhuff_out *o, const unsigned char *in, size_t from, size_t to,
                           const uint32_t *code, const uint8_t *lens)
{
    struct zhuff_out w = *o; /* in registers for the loop */
    size_t i = from;

    zhuff_flush(&w);
    for (; i + 3 <= to; i += 3) {
        w.acc |= (uint64_t)code[in[i]] << w.n;
        w.n += lens[in[i]];
        w.acc |= (uint64_t)code[in[i + 1]] << w.n;
        w.n += lens[in[i + 1]];
        w.acc |= (uint64_t)code[in[i + 2]] << w.n;
        w.n += lens[in[i + 2]];
        zhuff_flush(&w);
    }
    for (; i < to; i++)
        zhuff_put(&w, code[in[i]], lens[in[i]]);
    *o = w;
}

/* Writes out the bits held, up to the next byte boundary. */
static void zhuff_align(struct zhuff_out *o)
{
    while (o->n > 0) {
        *o->p++ = (unsigned char)o->acc;
        o->acc >>= 8;
        o->n = o->n > 8 ? o->n - 8 : 0;
    }
    o->acc = 0;
}

/* ---- Huffman codes ---- */

struct zhuff_node {
    uint32_t weight;
    uint16_t sym;
};

static int zhuff_by_weight(const void *a, const void *b)
{
    const struct zhuff_node *x = a, *y = b;

    if (x->weight != y->weight)
        return x->weight < y->weight ? -1 : 1;
    return x->sym < y->sym ? -1 : x->sym > y->sym;
}

/* Code lengths for freq[0..n) (n <= ZHUFF_NLIT), none over maxbits; unused symbols get 0. At
 * least two symbols get a code (a one-symbol code is not complete). When the Huffman tree is
 * too deep the weights are halved, keeping their order, and the tree built again (bzip2's way:
 * rarely needed, never far from optimal). */
static void zhuff_lengths(const uint32_t *freq, int n, int maxbits, uint8_t *len)
{
    struct zhuff_node leaf[ZHUFF_NLIT];
    uint32_t weight[2 * ZHUFF_NLIT], w[ZHUFF_NLIT];
    int parent[2 * ZHUFF_NLIT], depth[2 * ZHUFF_NLIT];
    int m = 0;

    memset(len, 0, (size_t)n);
    for (int s = 0; s < n; s++)
        w[s] = freq[s];
    for (int s = 0; s < n && m < 2; s++)
        m += w[s] > 0;
    for (int s = 0; s < n && m < 2; s++)
        if (w[s] == 0) {
            w[s] = 1;
            m++;
        }
    for (;;) {
        int nleaf = 0, nint = 0, li = 0, ii = 0, maxd = 0;

        for (int s = 0; s < n; s++)
            if (w[s] > 0)
                leaf[nleaf++] = (struct zhuff_node){w[s], (uint16_t)s};
        qsort(leaf, (size_t)nleaf, sizeof(leaf[0]), zhuff_by_weight);
        for (int i = 0; i < nleaf; i++)
            weight[i] = leaf[i].weight;
        /* two queues: leaves in order, then internal nodes, made in order of weight */
        while (nint < nleaf - 1) {
            int pick[2];

            for (int k = 0; k < 2; k++) {
                if (li < nleaf && (ii >= nint || weight[li] <= weight[nleaf + ii]))
                    pick[k] = li++;
                else
                    pick[k] = nleaf + ii++;
            }
            weight[nleaf + nint] = weight[pick[0]] + weight[pick[1]];
            parent[pick[0]] = parent[pick[1]] = nleaf + nint;
            nint++;
        }
        depth[nleaf + nint - 1] = 0; /* the root */
        for (int i = nleaf + nint - 2; i >= 0; i--) {
            depth[i] = depth[parent[i]] + 1;
            if (i < nleaf && depth[i] > maxd)
                maxd = depth[i];
        }
        if (maxd <= maxbits) {
            for (int i = 0; i < nleaf; i++)
                len[leaf[i].sym] = (uint8_t)depth[i];
            return;
        }
        for (int s = 0; s < n; s++)
            if (w[s] > 0)
                w[s] = 1 + w[s] / 2;
    }
}

static uint32_t zhuff_reverse(uint32_t code, unsigned bits)
{
    uint32_t r = 0;

    for (unsigned i = 0; i < bits; i++, code >>= 1)
        r = r << 1 | (code & 1);
    return r;
}

/* Canonical codes from lengths (RFC 1951 §3.2.2), bit-reversed for the LSB-first writer. */
static void zhuff_codes(const uint8_t *len, int n, uint32_t *code)
{
    unsigned count[ZHUFF_MAXBITS + 1] = {0}, next[ZHUFF_MAXBITS + 1];
    unsigned c = 0;

    for (int s = 0; s < n; s++)
        count[len[s]]++;
    count[0] = 0;
    for (int b = 1; b <= ZHUFF_MAXBITS; b++) {
        c = (c + count[b - 1]) << 1;
        next[b] = c;
    }
    for (int s = 0; s < n; s++)
        code[s] = len[s] ? zhuff_reverse(next[len[s]]++, len[s]) : 0;
}

/* ---- one block ---- */

/* The code lengths as the code-length alphabet writes them: a symbol 0..18 and its extra bits. */
struct zhuff_cl {
    uint8_t sym, extra;
};

static int zhuff_rle(const uint8_t *lens, int n, struct zhuff_cl *out)
{
    int k = 0;

    for (int i = 0; i < n;) {
        int cur = lens[i], run = 1;

        while (i + run < n && lens[i + run] == cur)
            run++;
        i += run;
        if (cur == 0) {
            for (; run >= 11; run -= run > 138 ? 138 : run)
                out[k++] = (struct zhuff_cl){18, (uint8_t)((run > 138 ? 138 : run) - 11)};
            if (run >= 3) {
                out[k++] = (struct zhuff_cl){17, (uint8_t)(run - 3)};
                run = 0;
            }
        } else {
            out[k++] = (struct zhuff_cl){(uint8_t)cur, 0};
            for (run--; run >= 3; run -= run > 6 ? 6 : run)
                out[k++] = (struct zhuff_cl){16, (uint8_t)((run > 6 ? 6 : run) - 3)};
        }
        while (run-- > 0)
            out[k++] = (struct zhuff_cl){(uint8_t)cur, 0};
    }
    return k;
}

static void zhuff_stored(struct zhuff_out *o, const unsigned char *in, size_t len, int last)
{
    zhuff_put(o, (uint32_t)last, 3); /* BTYPE 00 */
    zhuff_align(o);
    o->p[0] = (unsigned char)len;
    o->p[1] = (unsigned char)(len >> 8);
    o->p[2] = (unsigned char)~len;
    o->p[3] = (unsigned char)(~len >> 8);
    memcpy(o->p + 4, in, len);
    o->p += 4 + len;
}

static void zhuff_block(struct zhuff_out *o, const unsigned char *in, size_t len, int prev_ok,
                        int last)
{
    static const uint8_t order[ZHUFF_NCL] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                             11, 4,  12, 3, 13, 2, 14, 1, 15};
    static const uint8_t cl_extra[ZHUFF_NCL] = {[16] = 2, [17] = 3, [18] = 7};
    /* four tables: a stretch of one byte value would otherwise wait on one counter */
    uint32_t hist[4][256] = {{0}}, freq[ZHUFF_NLIT] = {0}, clfreq[ZHUFF_NCL] = {0};
    uint32_t code[ZHUFF_NLIT], clcode[ZHUFF_NCL];
    uint8_t lens[ZHUFF_NLENS], cllen[ZHUFF_NCL];
    struct zhuff_cl cl[ZHUFF_NLENS];
    struct zhuff_run runs[ZHUFF_MAXRUNS]; /* 32 KiB */
    uint64_t bits = 3 + 5 + 5 + 4, nmatch = 0;
    size_t i = 0;
    int ncl, nclen = ZHUFF_NCL, nruns = zhuff_runs(in, len, prev_ok, runs, hist);

    for (int s = 0; s < 256; s++)
        freq[s] = hist[0][s] + hist[1][s] + hist[2][s] + hist[3][s];
    freq[ZHUFF_EOB] = 1;
    for (int r = 0; r < nruns; r++)
        for (size_t left = runs[r].len, m; left > 0; left -= m, nmatch++) {
            m = zhuff_chunk(left);
            freq[257 + zhuff_len_code((unsigned)m)]++;
        }
    zhuff_lengths(freq, ZHUFF_NLIT, ZHUFF_MAXBITS, lens);
    lens[ZHUFF_NLIT] = lens[ZHUFF_NLIT + 1] = 1;
    ncl = zhuff_rle(lens, ZHUFF_NLENS, cl);
    for (int k = 0; k < ncl; k++)
        clfreq[cl[k].sym]++;
    zhuff_lengths(clfreq, ZHUFF_NCL, ZHUFF_CLBITS, cllen);
    while (nclen > 4 && cllen[order[nclen - 1]] == 0)
        nclen--;

    bits += 3 * (uint64_t)nclen;
    for (int k = 0; k < ncl; k++)
        bits += cllen[cl[k].sym] + cl_extra[cl[k].sym];
    for (int s = 0; s < ZHUFF_NLIT; s++)
        bits += (uint64_t)freq[s] * (lens[s] + (s > 256 ? zhuff_len_extra[s - 257] : 0));
    bits += nmatch; /* each match's distance code: one bit */
    if (bits > 8 * ((uint64_t)len + 5)) {
        zhuff_stored(o, in, len, last);
        return;
    }

    zhuff_codes(lens, ZHUFF_NLIT, code);
    zhuff_codes(cllen, ZHUFF_NCL, clcode);
    zhuff_put(o, (uint32_t)last | 2u << 1, 3); /* BFINAL, BTYPE 10: dynamic codes */
    zhuff_put(o, ZHUFF_NLIT - 257, 5);         /* HLIT */
    zhuff_put(o, ZHUFF_NDIST - 1, 5);
    zhuff_put(o, (uint32_t)nclen - 4, 4);
    for (int k = 0; k < nclen; k++)
        zhuff_put(o, cllen[order[k]], 3);
    for (int k = 0; k < ncl; k++) {
        zhuff_put(o, clcode[cl[k].sym], cllen[cl[k].sym]);
        if (cl_extra[cl[k].sym])
            zhuff_put(o, cl[k].extra, cl_extra[cl[k].sym]);
    }
    for (int r = 0; r <= nruns; r++) {
        size_t end = r < nruns ? runs[r].at : len;

        zhuff_literals(o, in, i, end, code, lens);
        i = end;
        if (r == nruns)
            break;
        for (size_t left = runs[r].len, m; left > 0; left -= m) {
            int c;

            m = zhuff_chunk(left);
            c = zhuff_len_code((unsigned)m);
            zhuff_put(o, code[257 + c], lens[257 + c]);
            zhuff_put(o, (uint32_t)(m - zhuff_len_base[c]), zhuff_len_extra[c]);
            zhuff_put(o, 0, 1); /* distance code 0: distance 1 */
        }
        i += runs[r].len;
    }
    zhuff_put(o, code[ZHUFF_EOB], lens[ZHUFF_EOB]);
}

/* ---- the zlib stream ---- */

size_t zhuff_bound(size_t len)
{
    size_t blocks = len / ZHUFF_BLOCK + 1;

    /* header, each block stored at worst (3 bits, alignment, 4 bytes of lengths), Adler-32,
     * and the writer's 8 bytes of slack */
    return 2 + len + blocks * 6 + 4 + 8;
}

size_t zhuff_compress(const unsigned char *in, size_t len, unsigned char *out)
{
    struct zhuff_out o = {out + 2, 0, 0};
    uint32_t adler = libdeflate_adler32(1, in, len);
    size_t pos = 0;

    out[0] = 0x78; /* deflate, 32 KiB window */
    out[1] = 0x01; /* fastest compression; (0x78 << 8 | 0x01) % 31 == 0 */
    do {
        size_t n = len - pos < ZHUFF_BLOCK ? len - pos : ZHUFF_BLOCK;

        zhuff_block(&o, in + pos, n, pos > 0, pos + n == len);
        pos += n;
    } while (pos < len);
    zhuff_align(&o);
    o.p[0] = (unsigned char)(adler >> 24);
    o.p[1] = (unsigned char)(adler >> 16);
    o.p[2] = (unsigned char)(adler >> 8);
    o.p[3] = (unsigned char)adler;
    return (size_t)(o.p + 4 - out);
}
