/* zhuff.h -- a zlib stream (RFC 1950) whose deflate blocks (RFC 1951) use Huffman coding alone,
 * no string matching: what zlib's Z_HUFFMAN_ONLY strategy writes. On the filtered rows of a
 * photograph, whose bytes are small residuals that rarely repeat as strings, it is smaller than
 * deflate with matching at zlib's default level, and several times as fast (tests/bench/README.md,
 * "PNG levels and row filters"). */
#ifndef PIXFLOW_ZHUFF_H
#define PIXFLOW_ZHUFF_H

#include <stddef.h>

/* Bytes zhuff_compress may write for len bytes in (whatever they are). */
size_t zhuff_bound(size_t len);

/* Compresses in[0..len) into out (zhuff_bound(len) bytes); returns the stream's length. Each
 * block of input gets its own code, or is stored when coding would not make it smaller. */
size_t zhuff_compress(const unsigned char *in, size_t len, unsigned char *out);

#endif
