/* stb_end.h -- after an stb header: the warnings stb_begin.h turned off are on again. */
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
