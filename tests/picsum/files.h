/* files.h -- pictures served from a folder instead of drawn: for tests that need exact bytes. */
#ifndef PICSUM_FILES_H
#define PICSUM_FILES_H

#include <stddef.h>

struct files;

/* Reads every regular file of dir (not starting with '.'), in name order. NULL with err set. */
struct files *files_load(const char *dir, char *err, size_t errlen);
void files_free(struct files *f);

/* File n (1-based, in name order): 0, or -1 when there is none. */
int files_get(const struct files *f, long n, const unsigned char **data, size_t *len);

#endif
