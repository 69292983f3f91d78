#!/usr/bin/env python3
"""Extract the C files that a Markdown page spells out, so a test can compile them.

Usage: extract_doc_code.py PAGE.md OUTDIR FILE...

A fenced block whose info string is ```c file=PATH belongs to PATH; the blocks of one
PATH are concatenated in page order (prose may sit between them). Each FILE named on the
command line is written to OUTDIR/basename(FILE), with #line directives pointing back at
the page, so a compiler error names the line of the Markdown to fix. It is an error when
a FILE has no block, or when the page has a block for a file not named: the page and the
build must list the same files, or a block could silently stop being compiled.
"""
import os
import re
import sys

FENCE = re.compile(r"^```c\s+file=(\S+)\s*$")


def extract(page):
    files = {}
    cur = None
    with open(page, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if cur is None:
                m = FENCE.match(line)
                if m:
                    cur = m.group(1)
                    # The block's first line is the next line of the page.
                    files.setdefault(cur, []).append('#line %d "%s"\n' % (n + 1, page))
            elif line.startswith("```"):
                cur = None
            else:
                files[cur].append(line)
    if cur is not None:
        sys.exit("%s: unterminated block for %s" % (page, cur))
    return files


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    page, outdir, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
    files = extract(page)
    extra = sorted(set(files) - set(wanted))
    missing = [w for w in wanted if w not in files]
    if extra or missing:
        sys.exit("%s: blocks for %s not built; no block for %s" % (page, extra, missing))
    for w in wanted:
        with open(os.path.join(outdir, os.path.basename(w)), "w", encoding="utf-8") as out:
            out.write("/* Generated from %s by scripts/extract_doc_code.py. */\n" % page)
            out.writelines(files[w])


if __name__ == "__main__":
    main()
