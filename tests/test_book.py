"""The course book: it builds with warnings as errors, and every page works offline in a browser.

The book is built once per session (``tools/build_book.sh`` into a temporary folder). Every built
page is then opened in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright)
over a local HTTP server, and checked against what its source file says should be there: the
title, rendered math, loaded figures, rendered widgets, no console error, no failed request and
no request leaving 127.0.0.1. Expectations come from ``_toc.yml`` and the source files, so a new
chapter needs no change here.
"""

from __future__ import annotations

import contextlib
import functools
import html.parser
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("FSLEARN_CHROMIUM", "/usr/bin/chromium"))
# Headless Chromium as root, with nothing that phones home (see shared notes on the toolchain).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
BUILD_TIMEOUT_S = 600
PAGE_TIMEOUT_MS = 20_000
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
# Pages Sphinx writes besides the documents of the table of contents.
GENERATED_PAGES = ("index.html", "genindex.html", "search.html")


# --------------------------------------------------------------------------------------------
# What the sources promise


def _toc_docs() -> list[str]:
    """Every document of _toc.yml, root first, in reading order (paths without suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    docs = [toc["root"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                docs.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk({key: toc[key] for key in ("parts", "chapters", "sections") if key in toc})
    return [re.sub(r"\.(md|ipynb|rst)$", "", doc) for doc in docs]


def _source(doc: str) -> Path:
    found = [path for suffix in SOURCE_SUFFIXES if (path := ROOT / f"{doc}{suffix}").exists()]
    assert found, f"_toc.yml lists {doc!r} but there is no {doc}.md or {doc}.ipynb"
    assert len(found) == 1, (
        f"{doc!r} has several sources ({', '.join(p.name for p in found)}): keep only one "
        "(a chapter that becomes a notebook must lose its .md placeholder)"
    )
    return found[0]


_FENCE = re.compile(r"^(```+|~~~+)\s*(\{[^}]*\})?[^\n]*\n.*?^\1\s*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.DOTALL)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)[^$\n]+?(?<=\S)\$(?!\$)")
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]+\)|<img\b", re.IGNORECASE)
_MATH_ROLE = re.compile(r"\{(math|eq)\}`")


@dataclass
class Expectations:
    doc: str
    source: Path
    title: str
    has_math: bool
    images: int
    widgets: int
    widget_state: bool


def _markdown_features(text: str) -> tuple[bool, int]:
    """(has math, number of images) of a MyST Markdown text."""
    math = bool(_MATH_ROLE.search(text))
    images = 0
    for fence in _FENCE.finditer(text):
        directive = (fence.group(2) or "").strip("{}").strip()
        if directive in ("math", "prf:proof"):
            math = True
        if directive in ("figure", "image"):
            images += 1
    prose = _INLINE_CODE.sub("", _FENCE.sub("", text))
    math = math or bool(_DISPLAY_MATH.search(prose) or _INLINE_MATH.search(prose))
    math = math or bool(re.search(r"\\begin\{(equation|align|gather|multline)\*?\}", prose))
    images += len(_MARKDOWN_IMAGE.findall(prose))
    images += len(re.findall(r"^:::+\s*\{(figure|image)\}", prose, re.MULTILINE))
    return math, images


def _first_heading(text: str) -> str | None:
    prose = _FENCE.sub("", text)
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", prose, re.MULTILINE)
    return match.group(1) if match else None


def _plain_title(title: str) -> str:
    title = re.sub(r"\{[a-z:]+\}`([^`]*)`", r"\1", title)  # roles
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # links
    return re.sub(r"[*`$\\]", "", title).strip()


def _expectations(doc: str) -> Expectations:
    source = _source(doc)
    text = source.read_text(encoding="utf-8")
    if source.suffix != ".ipynb":
        front = re.match(r"^---\n.*?\n---\n", text, re.DOTALL)
        body = text[front.end() :] if front else text
        has_math, images = _markdown_features(body)
        heading = _first_heading(body)
        assert heading, f"{source.relative_to(ROOT)} has no top-level '# title'"
        return Expectations(doc, source, _plain_title(heading), has_math, images, 0, False)

    notebook = json.loads(text)
    has_math, images, widgets, heading = False, 0, 0, None
    for cell in notebook.get("cells", []):
        cell_source = "".join(cell.get("source", []))
        if cell["cell_type"] == "markdown":
            cell_math, cell_images = _markdown_features(cell_source)
            has_math |= cell_math
            images += cell_images
            heading = heading or _first_heading(cell_source)
        elif cell["cell_type"] == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            if "remove-output" in tags or "remove-cell" in tags:
                continue
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if WIDGET_VIEW in data:
                    widgets += 1
                elif "text/html" not in data and any(mime in data for mime in IMAGE_MIMES):
                    images += 1
                elif "text/latex" in data and "text/html" not in data:
                    has_math = True
    assert heading, f"{source.relative_to(ROOT)} has no '# title' in a markdown cell"
    state = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {})
    return Expectations(
        doc, source, _plain_title(heading), has_math, images, widgets, bool(state.get("state"))
    )


TOC_DOCS = _toc_docs()


# --------------------------------------------------------------------------------------------
# The build


@pytest.fixture(scope="session")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the book once (warnings are errors) and return its HTML folder.

    ``FSLEARN_BOOK_HTML=path/to/_build/html`` checks an existing build instead (for instance an
    older commit's, to see that a new check would have caught a slip there).
    """
    if prebuilt := os.environ.get("FSLEARN_BOOK_HTML"):
        html_dir = Path(prebuilt)
        assert (html_dir / "index.html").is_file(), f"{prebuilt} (FSLEARN_BOOK_HTML): no index.html"
        return html_dir
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, FSLEARN_VENV=sys.prefix, PYTHONDONTWRITEBYTECODE="1")
    command = ["bash", str(ROOT / "tools" / "build_book.sh"), "--path-output", str(out)]
    started = time.monotonic()
    try:
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the book build took more than {BUILD_TIMEOUT_S} s:\n{error.stdout or ''}")
    log = (result.stdout or "") + (result.stderr or "")
    (out / "build.log").write_text(log, encoding="utf-8")
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` failed (exit {result.returncode}) after "
            f"{time.monotonic() - started:.0f} s. Build log (end):\n{log[-15000:]}",
            pytrace=False,
        )
    html_dir = out / "_build" / "html"
    assert html_dir.is_dir(), f"the build succeeded but wrote no {html_dir}:\n{log[-5000:]}"
    return html_dir


def test_every_toc_document_has_one_source() -> None:
    for doc in TOC_DOCS:
        _source(doc)


def test_toc_notebooks_carry_their_outputs() -> None:
    """The build renders stored outputs (execute_notebooks: off): notebooks must be run first."""
    for doc in TOC_DOCS:
        source = _source(doc)
        if source.suffix != ".ipynb":
            continue
        cells = json.loads(source.read_text(encoding="utf-8")).get("cells", [])
        code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
        unexecuted = [i for i, cell in enumerate(code) if cell.get("execution_count") is None]
        assert not unexecuted, (
            f"{source.relative_to(ROOT)}: code cells {unexecuted} were never run; the book shows "
            "stored outputs only, so execute the notebook and save it with its outputs"
        )


def test_build_writes_every_page(built_book: Path) -> None:
    for doc in TOC_DOCS:
        assert (built_book / f"{doc}.html").is_file(), f"no page built for {doc}"
    for page in GENERATED_PAGES:
        assert (built_book / page).is_file(), f"no {page} in the build"


def test_bibliography_lists_every_reference(built_book: Path) -> None:
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", bib, re.MULTILINE)
    assert keys, "book/references.bib has no entries"
    assert len(keys) == len(set(keys)), "book/references.bib has a key twice"
    page = (built_book / "book" / "bibliography.html").read_text(encoding="utf-8")
    entries = page.count('role="doc-biblioentry"')
    assert entries == len(keys), f"the bibliography page shows {entries} of {len(keys)} references"


class _ResourceScanner(html.parser.HTMLParser):
    """Collects the URLs a page would load by itself (not the links a reader may follow)."""

    LOADING_RELS: ClassVar[set[str]] = {
        "stylesheet",
        "preload",
        "modulepreload",
        "icon",
        "prefetch",
        "manifest",
        "preconnect",
        "dns-prefetch",
        "apple-touch-icon",
        "shortcut",
    }

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._script_type: str | None = None
        self.inline_scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "link" and set(values.get("rel", "").lower().split()) & self.LOADING_RELS:
            self.urls.append(values.get("href", ""))
        for name in ("src", "data", "poster", "srcset"):
            if name in values and tag in (
                "script",
                "img",
                "iframe",
                "source",
                "video",
                "audio",
                "embed",
                "object",
                "track",
                "input",
            ):
                self.urls.extend(part.strip().split(" ")[0] for part in values[name].split(","))
        if tag == "script":
            self._script_type = values.get("type", "text/javascript")

    def handle_data(self, data: str) -> None:
        if self._script_type is not None and "json" not in self._script_type:
            self.inline_scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script_type = None


_CSS_REMOTE = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])((?:https?:)?//[^'\")\s]+)")


def _is_remote(url: str) -> bool:
    return bool(re.match(r"^\s*(https?:)?//", url, re.IGNORECASE))


def test_no_page_names_a_remote_resource(built_book: Path) -> None:
    """Static check of the HTML and CSS: everything a page loads is inside the book."""
    problems = []
    for page in sorted(built_book.rglob("*.html")):
        relative = page.relative_to(built_book)
        if relative.parts[0] in ("_static", "_sources"):
            continue
        scanner = _ResourceScanner()
        scanner.feed(page.read_text(encoding="utf-8"))
        problems += [f"{relative}: loads {url}" for url in scanner.urls if _is_remote(url)]
        for body in scanner.inline_scripts:
            problems += [
                f"{relative}: inline script names {url}"
                for url in re.findall(r"https?://[^\s'\"]+", body)
            ]
    for css in sorted((built_book / "_static").rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
        for url in _CSS_REMOTE.findall(text):
            problems.append(f"{css.relative_to(built_book)}: loads {url}")
    if problems:
        pytest.fail("pages would reach the network:\n  " + "\n  ".join(problems), pytrace=False)


# --------------------------------------------------------------------------------------------
# The browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def book_server(built_book: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser test needs Debian's Chromium. "
            "Install it with: apt-get update && apt-get install -y chromium",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright is missing: pip install -e '.[dev]' (or pip install playwright)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageReport:
    title: str
    math_containers: int
    math_elements: int
    math_unrendered: int
    math_errors: int
    article_images: int
    broken_images: list[str]
    widgets: int
    problems: list[str]
    reader: dict[str, Any]


_IMAGES_SETTLED = """async () => {
  const images = [...document.images];
  images.forEach((img) => { img.loading = "eager"; });
  await Promise.all(images.map((img) => img.complete ? null :
      new Promise((done) => {
        img.addEventListener("load", done);
        img.addEventListener("error", done);
        setTimeout(done, 10000);
      })));
  return images.filter((img) => !(img.complete && img.naturalWidth > 0))
               .map((img) => img.getAttribute("src"));
}"""
_MATH_READY = """async () => {
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) { return false; }
  await MathJax.startup.promise;
  return true;
}"""
_WIDGET_ROOTS = "document.querySelectorAll('.widget-subarea > .jupyter-widgets').length"
# What a reader would see wrong on a page, each a list of short descriptions (see the tests
# below): Markdown tables left as text, display equations wider than their box, images
# stretched beyond their pixels, reprs of Python objects in outputs; and the page's links and
# text, for the checks on the exercises each chapter points to.
_READER_CHECKS = r"""() => {
  const article = document.querySelector('article.bd-article') || document.body;
  const code = 'pre, code, .cell_input, mjx-container, script, style, .highlight';
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => node.parentElement.closest(code)
        ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const rawTables = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    // A table's delimiter row, as Markdown writes it (the typographer may turn --- into a dash).
    if (/\|\s*:?[-\u2013\u2014]+:?\s*\|/.test(node.textContent)) {
      rawTables.push(node.textContent.trim().slice(0, 80));
    }
  }
  const wideEquations = [...article.querySelectorAll('mjx-container[display="true"]')]
    .filter((box) => box.scrollWidth > box.clientWidth + 1
                     || box.getBoundingClientRect().width > article.clientWidth + 1)
    .map((box) => `${(box.getAttribute('aria-label') || box.textContent).slice(0, 60)} `
                  + `(${box.scrollWidth} px in ${box.clientWidth} px)`);
  const enlargedImages = [...article.querySelectorAll('img')]
    .filter((img) => img.naturalWidth > 0 && !/\.svg$/i.test(img.getAttribute('src') || '')
                     && (img.clientWidth > img.naturalWidth + 1
                         || img.clientHeight > img.naturalHeight + 1))
    .map((img) => `${(img.getAttribute('src') || '').slice(-40)}: ${img.naturalWidth}x`
                  + `${img.naturalHeight} px shown at ${img.clientWidth}x${img.clientHeight}`);
  const outputs = [...article.querySelectorAll('.cell_output')].map((el) => el.innerText);
  const reprs = outputs.flatMap((text) => text.match(/<[^<>\n]* at 0x[0-9a-fA-F]+>/g) || []);
  return {
    rawTables, wideEquations, enlargedImages, reprs,
    links: [...article.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')),
    text: article.innerText,
  };
}"""


def _visit(
    browser: Any, base: str, path: str, expect: Expectations | None, redirect_to: str | None = None
) -> PageReport:
    from playwright.sync_api import Error as PlaywrightError

    problems: list[str] = []
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    origin = base.rstrip("/")

    def route(route_: Any) -> None:
        url = route_.request.url
        if url.startswith(origin + "/"):
            route_.continue_()
        else:
            problems.append(f"request leaves 127.0.0.1: {url}")
            route_.abort()

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text} ({message.location.get('url', '')})")

    def on_response(response: Any) -> None:
        if response.status >= 400:
            problems.append(f"HTTP {response.status}: {response.url}")

    def on_failed(request: Any) -> None:
        if request.url.startswith(origin + "/"):
            problems.append(f"request failed: {request.url} ({request.failure})")

    def on_request(request: Any) -> None:
        scheme = urlsplit(request.url).scheme
        if scheme not in ("data", "blob", "about") and not request.url.startswith(origin + "/"):
            problems.append(f"request leaves 127.0.0.1: {request.url}")

    page.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("request", on_request)
    try:
        page.goto(base + path, wait_until="load")
        if redirect_to is not None:
            page.wait_for_url(base + redirect_to)
            page.wait_for_load_state("load")
        if expect is not None and expect.has_math:
            try:
                page.wait_for_function(
                    "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                    timeout=10_000,
                )
                page.evaluate(_MATH_READY)
            except PlaywrightError as error:
                problems.append(f"MathJax did not start: {error}")
        if expect is not None and expect.widgets:
            # The count is checked by the test; a timeout here only means fewer widgets.
            with contextlib.suppress(PlaywrightError):
                page.wait_for_function(f"() => {_WIDGET_ROOTS} >= {expect.widgets}")
        broken = page.evaluate(_IMAGES_SETTLED)
        # Late requests (fonts, lazy scripts) are caught by waiting for the network to settle; a
        # page that never settles shows up through its requests.
        with contextlib.suppress(PlaywrightError):
            page.wait_for_load_state("networkidle", timeout=10_000)
        counts = page.evaluate(
            """() => ({
              containers: document.querySelectorAll('mjx-container').length,
              elements: document.querySelectorAll('.math').length,
              unrendered: [...document.querySelectorAll('.math')]
                  .filter((el) => !el.querySelector('mjx-container')
                                  && !el.closest('mjx-container')).length,
              errors: document.querySelectorAll('mjx-merror').length,
              images: document.querySelectorAll('article img, .bd-article img').length,
              widgets: """
            + _WIDGET_ROOTS
            + """,
            })"""
        )
        return PageReport(
            title=page.title(),
            math_containers=counts["containers"],
            math_elements=counts["elements"],
            math_unrendered=counts["unrendered"],
            math_errors=counts["errors"],
            article_images=counts["images"],
            broken_images=broken,
            widgets=counts["widgets"],
            problems=sorted(set(problems)),
            reader=page.evaluate(_READER_CHECKS),
        )
    finally:
        context.close()


@pytest.fixture(scope="module")
def book_title() -> str:
    return str(yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["title"])


@pytest.fixture(scope="module")
def page_reports(browser: Any, book_server: str) -> Any:
    """``report(doc)``: the page of ``doc`` as the browser showed it, visited once per module."""
    reports: dict[str, PageReport] = {}

    def report(doc: str) -> PageReport:
        if doc not in reports:
            reports[doc] = _visit(browser, book_server, f"{doc}.html", _expectations(doc))
        return reports[doc]

    return report


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_page_in_browser(doc: str, page_reports: Any, book_title: str) -> None:
    expect = _expectations(doc)
    report = page_reports(doc)
    failures = list(report.problems)

    if expect.title not in report.title:
        failures.append(f"title {report.title!r} lacks the source's heading {expect.title!r}")
    if book_title not in report.title:
        failures.append(f"title {report.title!r} lacks the book's title {book_title!r}")

    if expect.has_math and report.math_containers == 0:
        failures.append("the source has math but MathJax rendered none (no mjx-container)")
    if report.math_unrendered:
        failures.append(
            f"{report.math_unrendered} of {report.math_elements} math elements not rendered"
        )
    if report.math_errors:
        failures.append(f"{report.math_errors} MathJax errors (mjx-merror)")

    if report.broken_images:
        failures.append(f"images not loaded: {report.broken_images}")
    if report.article_images < expect.images:
        failures.append(
            f"the source has {expect.images} figures/images, the page shows {report.article_images}"
        )

    if expect.widgets and not expect.widget_state:
        failures.append(
            "the notebook has widget outputs but no saved widget state: execute it with "
            "nbclient/nbconvert (or save it from JupyterLab with the widget state)"
        )
    if report.widgets < expect.widgets:
        failures.append(
            f"the notebook stores {expect.widgets} widget views, the page rendered {report.widgets}"
        )

    if failures:
        where = f"{doc}.html (source {expect.source.relative_to(ROOT)})"
        pytest.fail(f"{where}:\n  " + "\n  ".join(failures), pytrace=False)


@pytest.mark.parametrize("page", GENERATED_PAGES)
def test_generated_page_in_browser(page: str, browser: Any, book_server: str) -> None:
    # index.html is only a redirect to the root document of the table of contents.
    redirect = f"{TOC_DOCS[0]}.html" if page == "index.html" else None
    report = _visit(browser, book_server, page, None, redirect_to=redirect)
    failures = list(report.problems)
    if not report.title.strip():
        failures.append("empty title")
    if report.broken_images:
        failures.append(f"images not loaded: {report.broken_images}")
    if failures:
        pytest.fail(f"{page}:\n  " + "\n  ".join(failures), pytrace=False)


# --------------------------------------------------------------------------------------------
# What a reader sees: each check below names the page and what is wrong on it.


def _fail_on(doc: str, what: str, found: list[str], fix: str) -> None:
    if found:
        more = f"\n  ... {len(found) - 10} more" if len(found) > 10 else ""
        listed = "\n  ".join(found[:10]) + more
        pytest.fail(f"{doc}.html: {what}:\n  {listed}\n{fix}", pytrace=False)


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_tables_render_as_tables(doc: str, page_reports: Any) -> None:
    _fail_on(doc, "Markdown tables shown as text", page_reports(doc).reader["rawTables"],
             "A displayed Markdown table needs GitHub-flavoured Markdown "
             "(nb_render_markdown_format in _config.yml) and a blank line before it.")


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_display_equations_fit_the_page(doc: str, page_reports: Any) -> None:
    _fail_on(doc, "display equations wider than the page (cut or behind a scrollbar)",
             page_reports(doc).reader["wideEquations"],
             "Split the equation over lines (an aligned or split environment).")


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_images_are_not_shown_larger_than_their_pixels(doc: str, page_reports: Any) -> None:
    _fail_on(doc, "images stretched beyond their natural size (blurry)",
             page_reports(doc).reader["enlargedImages"],
             "Draw them with fslearn.plotting's book style (figures at the page's width, widget "
             "pictures at twice their displayed resolution).")


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_no_python_object_repr_in_outputs(doc: str, page_reports: Any) -> None:
    _fail_on(doc, "outputs that show a Python object's repr", page_reports(doc).reader["reprs"],
             "End the cell with `;` or assign the value (e.g. `_ = torch.manual_seed(0)`).")


def _chapter_number(doc: str) -> int | None:
    """07 for ``book/chapters/07_further_topics``; None for a section (``07_1_augmentation``),
    whose exercises its chapter's page names."""
    match = re.fullmatch(r"book/chapters/(\d+)_(?!\d)[^/]+", doc)
    return int(match.group(1)) if match else None


def _exercises_of(chapter: int) -> list[str]:
    """The student notebooks of a chapter: ``exercises/CC_K_name.ipynb`` (chapter CC)."""
    return sorted(path.name for path in (ROOT / "exercises").glob(f"{chapter:02d}_*_*.ipynb"))


def test_exercises_are_numbered_by_chapter() -> None:
    """Every student notebook is ``CC_K_name.ipynb``: chapter CC, its K-th exercise, and a
    solution of the same name; so a chapter's exercises sort together."""
    notebooks = sorted(path.name for path in (ROOT / "exercises").glob("*.ipynb"))
    assert notebooks, "no exercise notebooks in exercises/"
    chapters = {_chapter_number(doc) for doc in TOC_DOCS} - {None}
    for name in notebooks:
        match = re.fullmatch(r"(\d\d)_(\d+)_[a-z0-9_]+\.ipynb", name)
        assert match, f"exercises/{name}: name it CC_K_topic.ipynb (chapter CC, exercise K)"
        assert int(match.group(1)) in chapters, f"exercises/{name}: no chapter {match.group(1)}"
        assert (ROOT / "exercises" / "solutions" / name).is_file(), f"no solutions/{name}"


@pytest.mark.parametrize("doc", [doc for doc in TOC_DOCS if _chapter_number(doc) is not None])
def test_chapter_points_to_its_exercises(doc: str, page_reports: Any) -> None:
    """A chapter that is a notebook ends by pointing to its exercises, by file name, with a link
    to the exercises page; placeholders (.md) are exempt until they are written."""
    chapter = _chapter_number(doc)
    assert chapter is not None
    exercises = _exercises_of(chapter)
    if _source(doc).suffix != ".ipynb" and not exercises:
        pytest.skip(f"{doc} is a placeholder without exercises")
    assert exercises, f"chapter {chapter} ({doc}) has no exercise in exercises/{chapter:02d}_K_*"
    reader = page_reports(doc).reader
    missing = [name for name in exercises if name not in reader["text"]]
    linked = any(re.search(r"(^|/)exercises\.html", href) for href in reader["links"])
    problems = [f"names no {name}" for name in missing]
    problems += [] if linked else ["has no link to the exercises page (book/exercises.md)"]
    problems += [] if "Try it yourself" in reader["text"] else ["has no 'Try it yourself' pointer"]
    _fail_on(doc, f"chapter {chapter} does not lead to its exercises", problems,
             "End the chapter with a 'Try it yourself' paragraph naming each exercise and "
             "linking {doc}`../exercises`.")
