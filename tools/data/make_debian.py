"""Builds data/debian/: Debian package descriptions -> synopsis, split so that families of packages
that share text never straddle splits.

Input: bookworm's main/i18n/Translation-en (about 64,000 stanzas of Package, Description-md5 and
Description-en), and main/binary-amd64/Packages for each package's Section. After `apt-get -o Acquire::Languages=en update` it is in /var/lib/apt/lists/, lz4
compressed; the script reads it through `/usr/lib/apt/apt-helper cat-file`, or takes a plain file:

    /usr/bin/python3 tools/data/make_debian.py [--input Translation-en] [--packages Packages] [--out data/debian]

Each stanza's Description-en is a one-line synopsis, then the long description: lines that start
with one space; a line " ." is a paragraph break (Debian Policy 5.6.13). The source is the long
description with paragraphs joined by a blank line collapsed to one space-separated text; the
target the synopsis.

Near-duplicates are grouped (union-find) and a whole group goes to one split:
- packages of one family by name: the stem left after dropping common prefixes (lib, python3-, …),
  common suffixes (-dev, -doc, -data, …) and version numbers;
- any two descriptions that share a paragraph of at least 12 words, or are equal as a whole (after
  lower-casing and collapsing white space), which ties foo, foo-data and foo-doc even when their
  names differ.
A group goes to test, validation or train by a hash of its first package name (5% / 5% / 90%),
except that groups of more than 500 entries (collections such as the Haskell, Qt or Python
library sets, tied by shared boiler-plate) always go to train, so that no held-out split is
dominated by one family.
Exact repeats of a (source, target) pair are dropped; so are descriptions under 8 words.

Writes train.jsonl.gz, validation.jsonl.gz, test.jsonl.gz ({"source", "target", "package",
"section"}; section is "" for the few packages without an amd64 build) and
corpus.txt.gz (the training descriptions, one per line, for pretraining), all gzip with mtime 0 so
the bytes depend only on the input.
"""

import argparse
import glob
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys

PREFIXES = ["python3-", "python-", "pypy-", "ruby-", "node-", "golang-", "libghc-", "r-cran-", "r-bioc-", "libjs-",
            "php-", "lua-", "elpa-", "fonts-", "gir1.2-", "librust-", "libocaml-", "ocaml-", "haskell-", "gnome-shell-extension-",
            "texlive-", "xfonts-", "ttf-", "libperl-", "perl-", "tcl-", "lib"]
SUFFIXES = ["-dev", "-doc", "-docs", "-data", "-common", "-dbg", "-dbgsym", "-utils", "-tools", "-bin", "-examples", "-tests",
            "-test", "-plugins", "-plugin", "-perl", "-java", "-cil", "-l10n", "-locales", "-i18n", "-runtime", "-core", "-base",
            "-extra", "-extras", "-full", "-nox", "-gtk", "-qt", "-gui", "-cli", "-server", "-client", "-daemon", "-static",
            "-headers", "-modules", "-module", "-dkms", "-source", "-src", "-all", "-lib", "-libs", "-shared", "-theme", "-themes",
            "-manual", "-html", "-pdf", "-info", "-mode", "-el", "-go", "-ruby", "-python", "-py", "-perl"]


def read_input(path):
    if path.endswith(".lz4"):
        return subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", path], check=True, capture_output=True).stdout.decode("utf-8")
    with open(path, encoding="utf-8") as f:
        return f.read()


def default_list(pattern, what):
    found = sorted(glob.glob("/var/lib/apt/lists/" + pattern))
    if not found:
        sys.exit(f"no bookworm main {what} in /var/lib/apt/lists; run `apt-get -o Acquire::Languages=en update` or pass it")
    return found[0]


def sections(text):
    """Package name -> Section field of a Packages file ("libs", "python", "games", ...)."""
    result, package = {}, None
    for line in text.split("\n"):
        if line.startswith("Package:"):
            package = line[len("Package:"):].strip()
        elif line.startswith("Section:") and package:
            result[package] = line[len("Section:"):].strip().split("/")[-1]
    return result


def parse(text):
    """Yields (package, synopsis, paragraphs) for each stanza."""
    for stanza in text.split("\n\n"):
        package, synopsis, lines, in_desc = None, None, [], False
        for line in stanza.split("\n"):
            if line.startswith("Package:"):
                package = line[len("Package:"):].strip()
                in_desc = False
            elif line.startswith("Description-en:"):
                synopsis = line[len("Description-en:"):].strip()
                in_desc = True
            elif in_desc and line.startswith(" "):
                lines.append(line[1:])
            else:
                in_desc = False
        if not package or not synopsis:
            continue
        paragraphs, current = [], []
        for line in lines:
            if line.strip() == ".":
                if current:
                    paragraphs.append(" ".join(current))
                current = []
            else:
                current.append(line.strip())
        if current:
            paragraphs.append(" ".join(current))
        paragraphs = [re.sub(r"\s+", " ", p).strip() for p in paragraphs]
        yield package, re.sub(r"\s+", " ", synopsis), [p for p in paragraphs if p]


def stem(name):
    s = name.lower()
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if s.startswith(p) and len(s) > len(p) + 1:
                s, changed = s[len(p):], True
                break
        for x in SUFFIXES:
            if s.endswith(x) and len(s) > len(x) + 1:
                s, changed = s[:-len(x)], True
                break
        t = re.sub(r"[-.]?[0-9][0-9.+~a-z]*$", "", s) if re.search(r"[a-z]{2}", s) else s
        if t != s and len(t) >= 2:
            s, changed = t, True
    return s


class UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def split_of(key):
    h = int.from_bytes(hashlib.sha256(("debian-split:" + key).encode()).digest()[:8], "little") % 100
    return "test" if h < 5 else "validation" if h < 10 else "train"


def write_gz(path, lines):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        for line in lines:
            g.write(line.encode("utf-8"))
            g.write(b"\n")
    with open(path + ".tmp", "wb") as f:
        f.write(buf.getvalue())
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default=None)
    ap.add_argument("--packages", default=None)
    ap.add_argument("--out", default="data/debian")
    args = ap.parse_args()
    text = read_input(args.input or default_list("*_debian_dists_bookworm_main_i18n_Translation-en*", "Translation-en"))
    section_of = sections(read_input(args.packages or default_list("*_debian_dists_bookworm_main_binary-amd64_Packages*", "binary-amd64 Packages")))

    entries, seen = [], set()
    stanzas = 0
    for package, synopsis, paragraphs in parse(text):
        stanzas += 1
        source = " ".join(paragraphs)
        if len(source.split()) < 8:
            continue
        if (source, synopsis) in seen:
            continue
        seen.add((source, synopsis))
        entries.append((package, synopsis, source, paragraphs))
    entries.sort(key=lambda e: (e[0], e[1], e[2]))

    uf = UnionFind(len(entries))
    first_by_key = {}
    for i, (package, _, _, paragraphs) in enumerate(entries):
        keys = ["stem:" + stem(package), "text:" + hashlib.sha1(re.sub(r"\s+", " ", " ".join(paragraphs).lower()).strip().encode()).hexdigest()]
        for p in paragraphs:
            norm = re.sub(r"\s+", " ", p.lower()).strip()
            if len(norm.split()) >= 12:
                keys.append("para:" + hashlib.sha1(norm.encode()).hexdigest())
        for k in keys:
            if k in first_by_key:
                uf.union(first_by_key[k], i)
            else:
                first_by_key[k] = i

    splits = {"train": [], "validation": [], "test": []}
    sizes_by_root = {}
    for i in range(len(entries)):
        r = uf.find(i)
        sizes_by_root[r] = sizes_by_root.get(r, 0) + 1
    groups = {}
    for i, (package, synopsis, source, _) in enumerate(entries):
        root = uf.find(i)
        groups.setdefault(root, 0)
        groups[root] += 1
        splits["train" if sizes_by_root[root] > 500 else split_of(entries[root][0])].append(json.dumps({"source": source, "target": synopsis, "package": package, "section": section_of.get(package, "")}, ensure_ascii=False))

    # Each split is written in a fixed pseudo-random order (not alphabetical), so that its first N
    # lines are a fair sample: `--examples N` and the quickstart's validation slice rely on this.
    for lines in splits.values():
        lines.sort(key=lambda l: hashlib.sha256(("debian-order:" + l).encode()).digest())
    os.makedirs(args.out, exist_ok=True)
    for name, lines in splits.items():
        write_gz(os.path.join(args.out, name + ".jsonl.gz"), lines)
    corpus = [json.loads(l)["source"] for l in splits["train"]]
    write_gz(os.path.join(args.out, "corpus.txt.gz"), corpus)

    sizes = sorted(groups.values())
    print(f"{stanzas} stanzas, {len(entries)} kept, {len(groups)} groups (largest {sizes[-1]}, {sum(1 for s in sizes if s > 1)} with more than one entry)")
    for name, lines in splits.items():
        words_s = sorted(len(json.loads(l)["source"].split()) for l in lines)
        words_t = sorted(len(json.loads(l)["target"].split()) for l in lines)
        print(f"{name}: {len(lines)} pairs; source words median {words_s[len(words_s) // 2]}, p90 {words_s[len(words_s) * 9 // 10]}; "
              f"target words median {words_t[len(words_t) // 2]}, p90 {words_t[len(words_t) * 9 // 10]}")


if __name__ == "__main__":
    main()
