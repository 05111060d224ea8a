#!/usr/bin/env python3
"""Checks that the documentation's references resolve (Python standard library only).

- Markdown links and images with a relative target ([text](path), [text](path#anchor),
  [text](#anchor)) in every .md file: the file exists and the anchor is one of its headings
  (GitHub's rule: lower case, punctuation dropped, spaces to hyphens).
- Paths of documentation pages written as text (docs/<page>.md) in .md files and in sources,
  scripts and build files: the page exists.
- A page named with a section in quotes right after it (docs/results.md, "Decode latency of
  each cell" or docs/performance.md ("The shipped models")): some heading of that page
  contains the quoted words (case and backticks ignored).

Prints every broken reference with its file and line, exits 1 if there is one.
Run from anywhere: MIXSERVE_SOURCE_DIR (or the argument) names the repository root.
"""
import os
import re
import sys

SKIP_DIRS = {".git", "data", "models", "node_modules", "__pycache__", ".gpudeps", "work-gpu"}
TEXT_SUFFIXES = (".md", ".cc", ".h", ".sh", ".py", ".txt", ".pbtxt", ".cmake", ".yml", ".yaml")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
DOC_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]+\.md)")
DOC_SECTION = re.compile(r"(?<![\w/.-])(docs/[\w./-]+\.md)(?:, | \()\"([^\"]+)\"")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def source_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not d.startswith("build")
                             and not (rel == "." and d.startswith(".")))
        for name in sorted(filenames):
            if name.endswith(TEXT_SUFFIXES) or name in ("CMakeLists.txt", "Dockerfile"):
                yield os.path.join(dirpath, name)


def slug(heading):
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # GitHub keeps letters, digits, _, - and spaces
    return text.replace(" ", "-")


_headings = {}


def headings(path):
    """The headings of a Markdown file (outside code fences), as written."""
    if path not in _headings:
        found, fenced = [], False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if FENCE.match(line):
                    fenced = not fenced
                    continue
                m = None if fenced else HEADING.match(line)
                if m:
                    found.append(m.group(2))
        _headings[path] = found
    return _headings[path]


def anchors(path):
    seen, result = {}, set()
    for h in headings(path):
        s = slug(h)
        n = seen.get(s, 0)
        seen[s] = n + 1
        result.add(s if n == 0 else f"{s}-{n}")
    return result


def plain(text):
    return re.sub(r"\s+", " ", text.replace("`", "")).strip().lower()


def check(root):
    problems = []
    for path in source_files(root):
        rel = os.path.relpath(path, root)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except UnicodeDecodeError:
            continue
        is_md = path.endswith(".md")
        fenced = False
        for number, line in enumerate(lines, 1):
            where = f"{rel}:{number}"
            if is_md and FENCE.match(line):
                fenced = not fenced
                continue
            if is_md and not fenced:
                for target in LINK.findall(line):
                    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                        continue  # http:, https:, mailto:
                    file_part, _, anchor = target.partition("#")
                    dest = path if not file_part else os.path.normpath(
                        os.path.join(os.path.dirname(path), file_part))
                    if not os.path.exists(dest):
                        problems.append(f"{where}: link to {target}: {file_part} does not exist")
                    elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                        problems.append(f"{where}: link to {target}: no heading of "
                                        f"{os.path.relpath(dest, root)} has the anchor #{anchor}")
            for page in DOC_PATH.findall(line):
                if not os.path.isfile(os.path.join(root, page)):
                    problems.append(f"{where}: {page} does not exist")
        # Section names may wrap onto the next line: search the whole text, lines joined.
        joined = " ".join(lines)
        starts = [0]
        for l in lines:
            starts.append(starts[-1] + len(l) + 1)
        for m in DOC_SECTION.finditer(joined):
            page, section = m.group(1), m.group(2)
            dest = os.path.join(root, page)
            if not os.path.isfile(dest):
                continue  # reported above
            wanted = plain(section)
            if not any(wanted in plain(h) for h in headings(dest)):
                number = next(i for i, s in enumerate(starts) if s > m.start())
                problems.append(f"{rel}:{number}: {page}, \"{section}\": no heading of {page} "
                                f"contains these words")
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MIXSERVE_SOURCE_DIR")
    if not root:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isfile(os.path.join(root, "README.md")):
        print(f"check_docs_links: {root} is not the repository root (no README.md)")
        return 2
    problems = check(root)
    for p in problems:
        print(p)
    print(f"check_docs_links: {len(problems)} broken reference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
