"""MkDocs hook: links from a page to files outside ``docs/`` (DAGs, Dockerfiles, ``.ci/run``) go to the
repository on GitHub, so the same Markdown reads right on GitHub and on the docs site.

A relative link that leaves ``docs/`` (or names a file of ``docs/`` that is not built into the site,
such as ``docs/examples/``) and names an existing file or folder of the repository becomes
``<repo_url>/blob/main/<path>`` (``tree`` for a folder); a link to something that does not exist is
left alone, so ``mkdocs build --strict`` still fails on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    root = docs_dir.parent
    repo_url = str(config.get("repo_url") or "").rstrip("/")
    if not repo_url:
        return markdown
    page_dir = (docs_dir / page.file.src_path).parent

    def rewrite(match: re.Match[str]) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        resolved = (page_dir / target).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            return match.group(0)
        if resolved.is_relative_to(docs_dir) and _is_built(files, resolved.relative_to(docs_dir).as_posix()):
            return match.group(0)
        kind = "tree" if resolved.is_dir() else "blob"
        url = f"{repo_url}/{kind}/main/{resolved.relative_to(root).as_posix()}"
        return f"{match.group(1)}{url}{match.group(3) or ''}{match.group(4)}"

    return _LINK.sub(rewrite, markdown)


def _is_built(files: Any, src_path: str) -> bool:
    file = files.get_file_from_path(src_path)
    if file is None:
        return False
    inclusion = getattr(file, "inclusion", None)
    return inclusion is None or bool(inclusion.is_included())
