"""Sphinx extension of the course book: pages that work offline and load cleanly.

Loaded by `_config.yml` (``sphinx.local_extensions``). It fixes three things of Jupyter Book 1's
stock setup that show up in a browser with no network:

* Inline scripts registered twice: sphinx-thebe and sphinx-togglebutton add their configuration
  scripts in events that Jupyter Book 1 fires in a way that puts them twice in every page
  (``const THEBE_JS_URL`` twice is a SyntaxError in the console). Each page's script and
  stylesheet lists are de-duplicated here.
* Thebe (live code through Binder) needs a remote service, so this book does not use it
  (``launch_buttons.thebe: false``). Its scripts, its stylesheet and the per-page Binder
  configuration it writes into every notebook page are removed, so that no page names a remote
  script at all.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

_THEBE_FILES = {"sphinx-thebe.js", "sphinx-thebe.css"}
_THEBE_MARKERS = ("THEBE_JS_URL", "text/x-thebe-config", "kernelName = ")


def _filename(asset: Any) -> str:
    filename = asset if isinstance(asset, str) else getattr(asset, "filename", None)
    return str(filename or "")


def _attributes(asset: Any) -> dict[str, Any]:
    return {} if isinstance(asset, str) else dict(getattr(asset, "attributes", {}) or {})


def _asset_key(asset: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    # The priority is left out on purpose: the duplicates differ only by it.
    return _filename(asset), tuple(sorted((str(k), str(v)) for k, v in _attributes(asset).items()))


def _is_thebe(asset: Any) -> bool:
    name = _filename(asset).split("?", 1)[0].rsplit("/", 1)[-1]
    body = str(_attributes(asset).get("body", ""))
    return name in _THEBE_FILES or any(marker in body for marker in _THEBE_MARKERS)


def _clean(assets: list[Any], drop_thebe: bool) -> list[Any]:
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    kept = []
    for asset in assets:
        if drop_thebe and _is_thebe(asset):
            continue
        key = _asset_key(asset)
        if key in seen:
            continue
        seen.add(key)
        kept.append(asset)
    return kept


def _thebe_enabled(app: Sphinx) -> bool:
    launch = (app.config.html_theme_options or {}).get("launch_buttons", {}) or {}
    return bool(launch.get("thebe"))


def clean_page_assets(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    drop_thebe = not _thebe_enabled(app)
    for key in ("script_files", "css_files"):
        if key in context:
            context[key][:] = _clean(list(context[key]), drop_thebe)


def drop_thebe_config(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    if _thebe_enabled(app):
        return
    for node in list(doctree.findall(nodes.raw)):
        if any(marker in node.astext() for marker in _THEBE_MARKERS):
            node.parent.remove(node)


def setup(app: Sphinx) -> dict[str, Any]:
    # After sphinx-thebe's own handlers (default priority 500), so there is something to remove.
    app.connect("doctree-resolved", drop_thebe_config, priority=900)
    app.connect("html-page-context", clean_page_assets, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
