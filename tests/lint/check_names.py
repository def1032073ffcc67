#!/usr/bin/env python3
"""check_names.py -- every name of lib/names.h is spelled once as a literal in the C sources.

A Redis key, stream field, counter, collection or document field written as a literal anywhere
else ("stored" in a C string, 'stored' inside an embedded Lua script) is reported with its file
and line: use the macro instead. Exit 1 when anything is reported.

    python3 tests/lint/check_names.py [SOURCE_DIR]
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
NAMES = os.path.join(ROOT, "lib", "names.h")
# What speaks the names to the outside world; tests, benchmarks, the image server and plugins
# are clients of the contract and may spell it.
DIRS = ["lib", "codec", "store", "host", "consumer", "admin", "ingest"]
# Lines where a literal that looks like a name is another thing: an option or command table
# ({"group", ...}), a key of a command's own JSON output, a log or error text.
NOT_A_NAME = re.compile(r'^\s*\{"|^\s*#define\s+CMD\b|\bOPT\(|\bjson_(key|kv_\w+)\(|'
                        r'\b(log_\w+|admin_fail|snprintf|setenv)\(|'
                        # the HTTP APIs' own words: query parameters, search statuses and events
                        r'\b(evhttp_find_header|web_param|search_event)\(|^\s*return "')
# Single literals that coincide with a name and are something else, with what they are.
ALLOWED = {
    ("lib/log.c", "error"): "a log level",
    ("ingest/main.c", "failed"): "the run's status in ingest's own report",
    ("admin/migrate.c", "url"): "a field of the previous layout's alias_from elements",
    ("consumer/metrics.c", "reason"): "a Prometheus label",
    ("consumer/metrics.c", "raw"): "a stage of the stage histogram (keeping the original)",
    ("admin/web/search.c", "stored"): "a search status of the console's API",
    ("admin/web/search.c", "aliased"): "a search status of the console's API",
    ("admin/web/search.c", "seen"): "a search status of the console's API",
}
MACRO = re.compile(r'^#define\s+([A-Z][A-Z0-9_]*)\s+"([^"]+)"', re.M)
C_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
LUA_QUOTED = re.compile(r"'([a-z_:]+)'")


def names():
    with open(NAMES, encoding="utf-8") as f:
        # C_T_*, LINK_*: the suffixes of transform:<name>:... and the fields of a transforms
        # element, words ("ok", "name") too common to tell apart from other text.
        return {value: macro for macro, value in MACRO.findall(f.read())
                if not macro.startswith(("C_T_", "LINK_"))}


def strip_comments(text):
    # Keeps line numbers: comments become blanks of the same newlines.
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r"/\*.*?\*/|//[^\n]*", blank, text, flags=re.S)


def check_file(path, known):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = strip_comments(f.read())
    found = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("#include") or NOT_A_NAME.search(line):
            continue
        for lit in C_STRING.findall(line):
            if lit in known:
                found.append((lineno, lit))
            for q in LUA_QUOTED.findall(lit):  # names inside an embedded Lua script
                if q in known:
                    found.append((lineno, q))
    return found


def main():
    known = names()
    bad = 0
    for d in DIRS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, d)):
            for name in sorted(files):
                if not name.endswith((".c", ".h")) or name == "names.h":
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ROOT)
                for lineno, lit in check_file(path, known):
                    if (rel, lit) in ALLOWED:
                        continue
                    print(f"{rel}:{lineno}: \"{lit}\" is {known[lit]} of lib/names.h")
                    bad += 1
    print(f"names: {bad} literal{'s' if bad != 1 else ''} spelled outside lib/names.h")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
