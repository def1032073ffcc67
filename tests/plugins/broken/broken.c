/* broken.c -- plugins with one defect each, for the loader's refusals. Built once per defect with
 * -DBROKEN_<DEFECT> (see CMakeLists.txt); each must be refused with its own reason, or, for
 * DUP_* and INIT_FAIL, load and then behave as the test expects. */
#include <stdio.h>

#include <pixflow/plugin.h>

static int broken_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                       size_t errlen)
{
#ifdef BROKEN_INIT_FAIL
    snprintf(err, errlen, "cannot open model file \"%s\"", config);
    return -1;
#else
    *state = NULL;
    return 0;
#endif
}

#ifndef BROKEN_NULL_APPLY
static int broken_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                        char *err, size_t errlen)
{
    *out = *in;
    return 0;
}
#endif

#ifdef BROKEN_HALF_THREAD_HOOKS
static void broken_thread_destroy(void *state, void *thread_state)
{
}
#endif

#if defined(BROKEN_DUP_A) || defined(BROKEN_DUP_B)
#define BROKEN_NAME "dup"
#elif defined(BROKEN_BAD_NAME)
#define BROKEN_NAME "Bad Name"
#elif defined(BROKEN_INIT_FAIL)
#define BROKEN_NAME "init_fail"
#elif defined(BROKEN_FORMAT_NAME)
#define BROKEN_NAME "jpeg"
#else
#define BROKEN_NAME "broken"
#endif

static const struct pixflow_plugin broken = {
#if defined(BROKEN_WRONG_MAJOR)
    .abi_major = PIXFLOW_ABI_MAJOR + 1,
    .abi_minor = 0,
    .struct_size = sizeof(struct pixflow_plugin),
#elif defined(BROKEN_NEWER_MINOR)
    .abi_major = PIXFLOW_ABI_MAJOR,
    .abi_minor = PIXFLOW_ABI_MINOR + 1,
    .struct_size = sizeof(struct pixflow_plugin),
#elif defined(BROKEN_TOO_SMALL)
    .abi_major = PIXFLOW_ABI_MAJOR,
    .abi_minor = PIXFLOW_ABI_MINOR,
    .struct_size = offsetof(struct pixflow_plugin, apply),
#else
    PIXFLOW_PLUGIN_HEADER,
#endif
    .name = BROKEN_NAME,
    .version = "0.0.1",
#ifdef BROKEN_DUP_B
    .description = "the second of two plugins called dup",
#endif
    .flags = PIXFLOW_THREAD_SAFE,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = broken_init,
#ifndef BROKEN_NULL_APPLY
    .apply = broken_apply,
#endif
#ifdef BROKEN_HALF_THREAD_HOOKS
    .thread_destroy = broken_thread_destroy,
#endif
#ifdef BROKEN_SHRUNK_NO_SIZE
    .accepts = PIXFLOW_ACCEPT_SHRUNK,
#endif
};

#if defined(BROKEN_NO_ENTRY)
/* Exports something, but not the entry point. */
PIXFLOW_EXPORT const struct pixflow_plugin *pixflow_plugin_entry_v2(void);
PIXFLOW_EXPORT const struct pixflow_plugin *pixflow_plugin_entry_v2(void)
{
    return &broken;
}
#elif defined(BROKEN_ENTRY_NULL)
PIXFLOW_EXPORT const struct pixflow_plugin *pixflow_plugin_entry(void);
PIXFLOW_EXPORT const struct pixflow_plugin *pixflow_plugin_entry(void)
{
    (void)broken;
    return NULL;
}
#else
PIXFLOW_PLUGIN_ENTRY(broken)
#endif
