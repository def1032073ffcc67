/* stb_begin.h -- include right before an stb header, and stb_end.h right after: stb's code is
 * not written for this project's warnings, which stay on for everything else. No include guard:
 * each stb header gets its own pair.
 *
 * GCC reports stb's static prototypes without bodies (GIF, thread flags) at the end of the file,
 * outside any push/pop: that one warning stays off for the rest of the including file. */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
