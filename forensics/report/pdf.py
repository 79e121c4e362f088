"""HTML -> PDF/A-3b with the findings and manifest attached, fetching nothing outside the run folder."""

from __future__ import annotations

import datetime as _dt
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LOGGER = logging.getLogger(__name__)
PDF_VARIANT = "pdf/a-3b"


class OfflineFetcher:
    """WeasyPrint URL fetcher that serves only ``data:`` URLs and files inside the run folder.

    A report about hostile text must reach neither the network nor the rest of the disk while it is
    rendered; every refusal is logged and kept in :attr:`refused` so tests and reviewers can see it.
    """

    def __init__(self, root: Path) -> None:
        from weasyprint.urls import URLFetcher

        check = self.check

        class _Fetcher(URLFetcher):
            def fetch(self, url: str, headers: Any = None) -> Any:
                check(url)
                return super().fetch(url, headers)

        self.root = root.resolve()
        self.refused: list[str] = []
        self.fetcher = _Fetcher(allowed_protocols=("data", "file"), allow_redirects=False, timeout=1)

    def check(self, url: str) -> None:
        """Raise (WeasyPrint then skips the resource) unless ``url`` is data: or a run-folder file."""
        scheme = urlsplit(url).scheme.lower()
        if scheme == "data" or (scheme == "file" and self._inside(url)):
            return
        self.refused.append(url[:200])
        LOGGER.warning("report: refused to fetch %r (only data: URLs and run-folder files)", url[:200])
        raise ValueError(f"refused to fetch {url[:200]!r}")

    def _inside(self, url: str) -> bool:
        path = Path(unquote(urlsplit(url).path)).resolve()
        return path == self.root or self.root in path.parents


@dataclass
class PdfResult:
    data: bytes
    pages: int
    refused: list[str]


def render_pdf(html: str, run_dir: str | Path, attachments: Mapping[str, bytes],
               when: _dt.datetime) -> PdfResult:
    """HTML -> PDF/A-3b with ``attachments`` embedded; fixed dates so the metadata is the same every run."""
    import weasyprint

    offline = OfflineFetcher(Path(run_dir))
    document = weasyprint.HTML(string=html, base_url=Path(run_dir).resolve().as_uri() + "/",
                               url_fetcher=offline.fetcher)
    files = [weasyprint.Attachment(file_obj=io.BytesIO(data), name=name, description=f"{name} of this run",
                                   created=when, modified=when, relationship="Data",
                                   url_fetcher=offline.fetcher)
             for name, data in attachments.items()]
    rendered = document.render(pdf_variant=PDF_VARIANT)
    data = rendered.write_pdf(attachments=files, pdf_variant=PDF_VARIANT)
    return PdfResult(data=data, pages=len(rendered.pages), refused=offline.refused)
