/* loader.h -- transform plugins: load and check .so files (chains of them are chain.h). */
#ifndef PIXFLOW_LOADER_H
#define PIXFLOW_LOADER_H

#include <stddef.h>

#include <pixflow/plugin.h>

struct loader;

/* Where counters go: transform:<name>:ok|failed|usec from chains, transform:<name>:<counter>
 * from plugins. Called from pool threads, once per counter per picture: keep it cheap. */
typedef void (*loader_counter_fn)(void *arg, const char *name, long long delta);

struct loader_plugin_info {
    const char *name, *version, *description; /* description may be NULL */
    const char *path;                         /* as loaded */
    const char *sha256;                       /* of the .so file, hex */
    unsigned abi_major, abi_minor;
    unsigned flags;  /* PIXFLOW_THREAD_SAFE | ... */
    unsigned inputs; /* PIXFLOW_INPUT_* */
};

struct loader_rejected {
    const char *path;
    const char *error; /* the reason, as logged */
};

/* counter may be NULL (counters are dropped). NULL when out of memory. */
struct loader *loader_new(loader_counter_fn counter, void *arg);
/* Unloads every plugin: call it after chain_free() of every chain built from this loader. */
void loader_free(struct loader *l);

/* Loads one plugin: dlopen(RTLD_NOW | RTLD_LOCAL), then the checks, each refusal with one
 * reason: no entry symbol, ABI major other than this host's, minor newer than this host's,
 * descriptor smaller than its minor requires, invalid name, no inputs, missing apply (or only
 * one of thread_init/thread_destroy), a name already loaded. Logs event=plugin_loaded or
 * event=plugin_rejected plugin=<path> error="<reason>". 0, or -1 with the reason in err; a
 * rejected plugin is unloaded and changes nothing else. */
int loader_load(struct loader *l, const char *path, char *err, size_t errlen);

/* Loads every *.so of dir, in name order (so the first of two duplicates is the one kept). The
 * number of plugins loaded, or -1 with err when dir cannot be read. Rejected files are logged,
 * listed by loader_rejected(), and do not stop the scan. */
int loader_scan(struct loader *l, const char *dir, char *err, size_t errlen);

size_t loader_count(const struct loader *l);
const struct loader_plugin_info *loader_plugin(const struct loader *l, size_t i);
size_t loader_rejected_count(const struct loader *l);
const struct loader_rejected *loader_rejected(const struct loader *l, size_t i);

#endif
