/* plugins.c -- pixflow plugins: what the workers would load from the plugin folder.
 *
 * The same loader as the consumer (loader_scan, then loader_chain_new on PIXFLOW_TRANSFORMS), so
 * what this lists is what a worker started with these settings gets, and each file it refuses
 * comes with the loader's own reason. */
#include "admin.h"
#include "human.h"
#include "json.h"
#include "chain.h"

#include <stdio.h>
#include <string.h>

#define CMD "plugins"

static const char synopsis[] =
    "pixflow plugins [--json]\n\n"
    "Loads every *.so of the plugin folder as a worker does and lists each plugin (name,\n"
    "version, ABI, flags, inputs, SHA-256 of the file), each file that was refused and why,\n"
    "and whether the transform chain (PIXFLOW_TRANSFORMS) builds from them.\n"
    "Exit: 0 everything loads and the chain builds, 1 a file was refused, the folder cannot be\n"
    "read or the chain does not build, 2 bad usage";

static struct {
    int json;
} opt;

static const struct cfg_option own_options[] = {
    {"json", NULL, cfg_switch, &opt.json, "", .flags = CFG_NOARG, .help = "one JSON object"},
    {NULL},
};

/* "thread-safe,deterministic" / "gray,rgb": names of the bits set. */
static const char *plugins_bits(unsigned bits, const char *const *names, int n, char *buf,
                                size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < n; i++)
        if (bits & (1u << i))
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? "," : "", names[i]);
    if (buf[0] == '\0')
        snprintf(buf, len, "-");
    return buf;
}

static const char *const flag_names[] = {"thread-safe", "deterministic", "in-place"};
static const char *const input_names[] = {"gray", "rgb", "rgba"};

static void plugins_json_bits(struct json *j, const char *key, unsigned bits,
                              const char *const *names, int n)
{
    json_key(j, key);
    json_array(j);
    for (int i = 0; i < n; i++)
        if (bits & (1u << i))
            json_str(j, names[i]);
    json_end(j);
}

static void plugins_json(const struct settings *s, const struct loader *l, int scanned,
                         const char *scan_err, const char *chain_err)
{
    struct json j;
    json_init(&j, stdout);
    json_object(&j);
    json_kv_str(&j, "plugin_path", s->plugin_path);
    if (scanned < 0)
        json_kv_str(&j, "error", scan_err);
    json_key(&j, "plugins");
    json_array(&j);
    for (size_t i = 0; i < loader_count(l); i++) {
        const struct loader_plugin_info *p = loader_plugin(l, i);
        char abi[32];
        snprintf(abi, sizeof(abi), "%u.%u", p->abi_major, p->abi_minor);
        json_object(&j);
        json_kv_str(&j, "name", p->name);
        json_kv_str(&j, "version", p->version);
        json_kv_str(&j, "description", p->description);
        json_kv_str(&j, "abi", abi);
        plugins_json_bits(&j, "flags", p->flags, flag_names, 3);
        plugins_json_bits(&j, "inputs", p->inputs, input_names, 3);
        json_kv_str(&j, "sha256", p->sha256);
        json_kv_str(&j, "path", p->path);
        json_end(&j);
    }
    json_end(&j);
    json_key(&j, "rejected");
    json_array(&j);
    for (size_t i = 0; i < loader_rejected_count(l); i++) {
        const struct loader_rejected *r = loader_rejected(l, i);
        json_object(&j);
        json_kv_str(&j, "path", r->path);
        json_kv_str(&j, "error", r->error);
        json_end(&j);
    }
    json_end(&j);
    json_key(&j, "chain");
    json_object(&j);
    json_kv_str(&j, "transforms", s->transforms);
    json_key(&j, "ok");
    json_bool(&j, chain_err == NULL);
    if (chain_err)
        json_kv_str(&j, "error", chain_err);
    json_end(&j);
    json_end(&j);
}

static void plugins_text(const struct settings *s, const struct loader *l, int scanned,
                         const char *scan_err, const char *chain_err)
{
    char flags[64], inputs[32];
    printf("plugin folder: %s\n", s->plugin_path);
    if (scanned < 0)
        printf("  cannot be read: %s\n", scan_err);
    if (loader_count(l) > 0)
        printf("\n%-16s %-10s %-5s %-32s %-14s %s\n", "NAME", "VERSION", "ABI", "FLAGS", "INPUTS",
               "SHA256");
    for (size_t i = 0; i < loader_count(l); i++) {
        const struct loader_plugin_info *p = loader_plugin(l, i);
        char abi[32];
        snprintf(abi, sizeof(abi), "%u.%u", p->abi_major, p->abi_minor);
        printf("%-16s %-10s %-5s %-32s %-14s %s\n", p->name, p->version, abi,
               plugins_bits(p->flags, flag_names, 3, flags, sizeof(flags)),
               plugins_bits(p->inputs, input_names, 3, inputs, sizeof(inputs)), p->sha256);
        printf("  %s%s%s\n", p->path, p->description ? " -- " : "",
               p->description ? p->description : "");
    }
    for (size_t i = 0; i < loader_rejected_count(l); i++) {
        const struct loader_rejected *r = loader_rejected(l, i);
        printf("\nrejected %s\n  ", r->path);
        human_print(stdout, r->error, strlen(r->error), 0);
        putchar('\n');
    }
    printf("\nchain %s: %s\n", s->transforms[0] ? s->transforms : "(empty)",
           chain_err ? chain_err : "ok");
    printf("%zu loaded, %zu rejected\n", loader_count(l), loader_rejected_count(l));
}

int plugins_main(int argc, char **argv)
{
    struct settings s;
    struct admin_common c;
    char **ops, scan_err[512] = "", chain_err[512] = "";
    int nops, status;
    if (admin_settings(&s, SET_PLUGINS, own_options, &c, CMD, synopsis, argc, argv, &ops, &nops,
                       &status) < 0)
        return status;
    if (nops > 0)
        return admin_fail(CMD, ADMIN_USAGE, "%s: unexpected operand (try --help)", ops[0]);
    struct loader *l = loader_new(NULL, NULL);
    if (l == NULL)
        return admin_fail(CMD, ADMIN_FAIL, "out of memory");
    int scanned = loader_scan(l, s.plugin_path, scan_err, sizeof(scan_err));
    struct chain *ch = loader_chain_new(l, s.transforms, chain_err, sizeof(chain_err));
    const char *chain_why = ch ? NULL : chain_err;
    if (opt.json)
        plugins_json(&s, l, scanned, scan_err, chain_why);
    else
        plugins_text(&s, l, scanned, scan_err, chain_why);
    fflush(stdout);
    int bad = scanned < 0 || loader_rejected_count(l) > 0 || ch == NULL;
    chain_free(ch);
    loader_free(l);
    return bad ? ADMIN_FAIL : ADMIN_OK;
}
