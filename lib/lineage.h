/* lineage.h -- one link of the chain that made a stored picture, as documents record it in
 * `transforms` (SPEC §6): the plugin host builds these, the store writes them. */
#ifndef PIXFLOW_LINEAGE_H
#define PIXFLOW_LINEAGE_H

struct lineage_link {
    const char *name, *version;
    const char *so_sha256; /* of the plugin's .so file, hex; NULL: field left out */
    const char *config;    /* as the chain gave it ("" none): `renditions` documents record it */
};

#endif
