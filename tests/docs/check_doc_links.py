#!/usr/bin/env python3
"""Fails when a file of the repository cites a Markdown document that the repository does not hold.

Usage: check_doc_links.py REPO_ROOT      check every git-tracked text file (or every file when git is absent)
       check_doc_links.py --self-test    check that the checker itself catches a broken citation

A citation is any token ending in ".md" (e.g. "docs/ALGORITHMS.md §2.4", "SOURCE.md", "../README.md"). It
resolves when the file exists relative to the repository root, relative to the citing file's folder, or, for a
bare name, in docs/ (so "HARDWARE.md §E.2" in a source comment means docs/HARDWARE.md). EXTERNAL lists the few
names that are other projects' documents or files rackep writes at run time.
"""
import os
import re
import subprocess
import sys
import tempfile

CITATION = re.compile(r"(?<![A-Za-z0-9_./-])((?:\.\.?/)?[A-Za-z0-9_][A-Za-z0-9_./-]*\.md)(?![A-Za-z0-9_])")
EXTERNAL = {
    "sim/trace_format.md": "moe-balance's JSONL format document (johanna-rock/moe-balance), cited as a source",
    "SOURCE.md": "the license notice rackep writes into every imported trace directory",
    "t/SOURCE.md": "a test's temporary output path",
    "esft/SOURCE.md": "a test's temporary output path",
}
SKIP_DIRS = {".git", "build", "build-cuda"}
SELF = "tests/docs/check_doc_links.py"


def tracked_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True, check=True).stdout
        return [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return files


def broken_citations(root, files):
    bad = []
    for rel in files:
        if rel == SELF:
            continue  # its docstring and self-test cite made-up names on purpose
        path = os.path.join(root, rel)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue  # binary files (images, .npy)
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in CITATION.finditer(line):
                name = m.group(1)
                word_start = max(line.rfind(" ", 0, m.start()), line.rfind("(", 0, m.start())) + 1
                if name in EXTERNAL or "://" in line[word_start:m.end()]:
                    continue  # another project's document, or part of a URL
                candidates = [os.path.join(root, name), os.path.join(os.path.dirname(path), name)]
                if "/" not in name:
                    candidates.append(os.path.join(root, "docs", name))
                if not any(os.path.isfile(c) for c in candidates):
                    bad.append("%s:%d: cites %s, which the repository does not hold" % (rel, lineno, name))
    return bad


def self_test():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "docs"))
        os.makedirs(os.path.join(d, "src"))
        open(os.path.join(d, "docs", "GOOD.md"), "w").write("# good\n")
        open(os.path.join(d, "README.md"), "w").write("see docs/GOOD.md and GOOD.md §1 and ./README.md\n")
        open(os.path.join(d, "src", "a.cpp"), "w").write("// GOOD.md §2; docs/MISSING.md §3\n// LOST.md\n")
        bad = broken_citations(d, ["README.md", "src/a.cpp", "docs/GOOD.md"])
        want = ["src/a.cpp:1: cites docs/MISSING.md", "src/a.cpp:2: cites LOST.md"]
        ok = len(bad) == 2 and all(b.startswith(w) for b, w in zip(bad, want))
        print("self-test", "passed" if ok else "FAILED: %s" % bad)
        return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = os.path.abspath(sys.argv[1])
    bad = broken_citations(root, tracked_files(root))
    for b in bad:
        print(b)
    print("%d broken document citation(s)" % len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
