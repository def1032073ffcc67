/* pconf.h -- config strings of the bundled plugins: typed keys, one clear message per mistake.
 *
 * Each plugin describes its keys in a small table and hands it, with the config string init()
 * received, to pconf_parse(). The table gets the values and which keys were given; what depends
 * on several keys (one of two required, two that exclude each other) stays in the plugin.
 * Messages do not name the plugin: the host puts "<name>: " in front of them. */
#ifndef PIXFLOW_PCONF_H
#define PIXFLOW_PCONF_H

#include <stddef.h>
#include <stdint.h>

enum pconf_type {
    PCONF_UINT,   /* decimal integer, min..max */
    PCONF_MILLI,  /* decimal number with up to 3 decimals, kept in thousandths, min..max */
    PCONF_CHOICE, /* one of choices[], kept as its index */
};

struct pconf_key {
    const char *name;
    enum pconf_type type;
    uint32_t min, max;          /* PCONF_UINT: the bounds; PCONF_MILLI: in thousandths */
    const char *const *choices; /* PCONF_CHOICE: NULL-terminated */
    uint32_t value;             /* out: the value, or the default left in place when not given */
    int seen;                   /* out: 1 when the config gave the key */
};

/* Parses config ("key=value;key=value", see pixflow_config_next()) into keys[0..n). Refuses a
 * pair without '=', an unknown key, a key given twice, an empty value and a value out of its
 * type or range. 0, or -1 with the reason in err. */
int pconf_parse(const char *config, struct pconf_key *keys, size_t n, char *err, size_t errlen);

/* A plugin's state of `size` bytes, zeroed, for init() to fill; NULL with "out of memory" in
 * err. The plugin frees it with free() in destroy(). */
void *pconf_state(size_t size, char *err, size_t errlen);

#endif
