/* plugtest.h -- shared by the tests of the bundled plugins: a host table that tracks (and can
 * refuse) allocations like the real one, image builders, and init/apply wrappers that check the
 * contract of plugin.h on every call. */
#ifndef PIXFLOW_PLUGTEST_H
#define PIXFLOW_PLUGTEST_H

#include <stddef.h>
#include <stdint.h>

#include <pixflow/plugin.h>

extern const struct pixflow_host plugtest_host;

/* host->alloc() succeeds this many more times, then returns NULL; -1 (the default): always. */
extern int plugtest_alloc_budget;

/* A w x h image of `channels` channels, rows `pad` bytes longer than needed, filled from px
 * (tightly packed; NULL: zeroes), padding bytes 0xee. Free with plugtest_image_free(). */
struct pixflow_image plugtest_image(uint32_t w, uint32_t h, uint32_t channels, size_t pad,
                                    const unsigned char *px);
void plugtest_image_free(struct pixflow_image *im);

/* init() with config must succeed; returns the state. */
void *plugtest_init(const struct pixflow_plugin *d, const char *config);
/* init() with config must fail with exactly the message want. */
void plugtest_init_fails(const struct pixflow_plugin *d, const char *config, const char *want);
void plugtest_destroy(const struct pixflow_plugin *d, void *state);

/* apply(): on success checks the answer lies in the input's bytes or in the one host block left
 * (scratch must have been given back), and returns 0; on failure frees what the plugin
 * allocated, as the host does, and returns -1 with err set. Release the result with
 * plugtest_result_free(). */
int plugtest_apply(const struct pixflow_plugin *d, void *state, const struct pixflow_image *in,
                   struct pixflow_image *out, char *err, size_t errlen);
void plugtest_result_free(struct pixflow_image *out);
/* Blocks from host->alloc() not yet freed. */
int plugtest_live_blocks(void);

/* The result, tightly packed, for assert_memory_equal (a static buffer, overwritten each call). */
const unsigned char *plugtest_packed(const struct pixflow_image *im);

/* init(config), then apply() to in must fail with exactly the message want while host->alloc()
 * has budget successes left (plugtest_alloc_budget; -1: no limit), then destroy(). */
void plugtest_apply_fails(const struct pixflow_plugin *d, const char *config,
                          const struct pixflow_image *in, int budget, const char *want);

/* One picture through a plugin whose answer has its input's size and channels: init(config),
 * apply() to plugtest_image(w, h, c, pad, px) marked writable or not, destroy(). The answer must
 * be w x h x c, over the input's own bytes (same stride, padding untouched) when writable, in
 * a new buffer otherwise. Returns it tightly packed; free with plugtest_image_free(). */
struct pixflow_image plugtest_same_size(const struct pixflow_plugin *d, const char *config,
                                        uint32_t w, uint32_t h, uint32_t c, size_t pad,
                                        int writable, const unsigned char *px);

#endif
