#!/usr/bin/env python3
"""Checks the built book (`target/book`) and the README for broken internal links: every link
to a page of the book must reach a page that exists, and every `#anchor` an element id on it.
Links to the repository (github.com/ssm-flags/ssm-flags/blob/main/PATH) must name a file that
exists in the working tree. External links are not fetched (CI is offline).

Usage: check_links.py BOOK_DIR REPO_ROOT   (exit 1 listing every broken link)"""

import html.parser
import os
import re
import sys
import urllib.parse

REPO = "https://github.com/ssm-flags/ssm-flags/blob/main/"


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])


def main(book, root):
    pages = {}
    for directory, _, files in os.walk(book):
        for name in files:
            if name.endswith(".html"):
                path = os.path.join(directory, name)
                page = Page()
                page.feed(open(path, encoding="utf-8").read())
                pages[os.path.relpath(path, book)] = page
    broken = []
    for source, page in pages.items():
        if source in ("print.html", "404.html", "toc.html"):
            continue
        for href in page.links:
            if href.startswith(REPO):
                target = urllib.parse.unquote(href[len(REPO):].split("#")[0])
                if not os.path.exists(os.path.join(root, target)):
                    broken.append(f"{source}: {href} (no such file in the repository)")
                continue
            if re.match(r"^[a-z]+:", href) or href.startswith("//"):
                continue
            path, _, anchor = href.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(source), path)) if path else source
            if target not in pages:
                broken.append(f"{source}: {href} (no page {target})")
            elif anchor and urllib.parse.unquote(anchor) not in pages[target].ids:
                broken.append(f"{source}: {href} (no #{anchor} on {target})")
    # The README's links into the book and the repository.
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    for href in re.findall(r"\]\(([^)\s]+)\)", readme):
        if re.match(r"^[a-z]+:", href):
            continue
        path, _, anchor = href.partition("#")
        if path and not os.path.exists(os.path.join(root, path)):
            broken.append(f"README.md: {href} (no such file)")
        elif path.startswith("docs/src/") and path.endswith(".md") and anchor:
            page = os.path.relpath(path, "docs/src")[:-3] + ".html"
            if page not in pages or anchor not in pages[page].ids:
                broken.append(f"README.md: {href} (no #{anchor} in the book's {page})")
    for line in broken:
        print(line)
    print(f"{len(pages)} pages checked, {len(broken)} broken links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
