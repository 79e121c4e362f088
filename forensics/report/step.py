"""Step 07: read findings and manifest from the run folder, write report.html and report.pdf."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.custody import (
    MANIFEST_NAME,
    Manifest,
    RunFolder,
    atomic_write_bytes,
    atomic_write_text,
    sha256_bytes,
)
from forensics.errors import InputError
from forensics.report.appendix import timestamp
from forensics.report.constants import FINDINGS_NAME, HTML_NAME, PDF_NAME, STEP
from forensics.report.html import render_html
from forensics.report.pdf import render_pdf

if TYPE_CHECKING:
    from forensics.case import Case


def _read_json(path: Path) -> tuple[dict[str, Any], bytes]:
    """The parsed object and the exact bytes (the bytes are what the PDF attaches), refused when the
    manifest recorded other bytes for the file."""
    try:
        raw = path.read_bytes()
        RunFolder(path.parent).verify(path.name, sha256_bytes(raw))  # findings edited after step 06?
        value = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", path=path, fix="run the earlier steps of the case first") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(f"not valid JSON ({error})", path=path,
                         fix="re-run the step that writes it") from None
    if not isinstance(value, dict):
        raise InputError("expected a JSON object", path=path, fix="re-run the step that writes it")
    return value, raw


@dataclass
class Report:
    """What :func:`build` produced; ``pages`` and ``refused`` are for display and tests."""

    html: Path
    pdf: Path
    pages: int
    refused: list[str]


def build(run_dir: str | Path) -> Report:
    """Render report.html and report.pdf into the run folder (atomically) and record both in the manifest."""
    run_dir = Path(run_dir)
    findings_path, manifest_path = run_dir / FINDINGS_NAME, run_dir / MANIFEST_NAME
    findings, findings_bytes = _read_json(findings_path)
    manifest = Manifest.load(run_dir)
    html = render_html(findings, manifest.data, run_dir)
    html_path, pdf_path = run_dir / HTML_NAME, run_dir / PDF_NAME
    atomic_write_text(html_path, html)
    attachments = {MANIFEST_NAME: manifest_path.read_bytes() if manifest_path.exists() else b"{}\n",
                   FINDINGS_NAME: findings_bytes}
    pdf = render_pdf(html, run_dir, attachments, timestamp(findings, manifest.data))
    atomic_write_bytes(pdf_path, pdf.data)
    manifest = Manifest.load(run_dir)
    manifest.record_artifact(html_path, STEP)
    manifest.record_artifact(pdf_path, STEP)
    manifest.save()
    return Report(html=html_path, pdf=pdf_path, pages=pdf.pages, refused=pdf.refused)


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Build the report of a run folder; returns ``(html_path, pdf_path)``."""
    report = build(run_dir)
    return report.html, report.pdf


def run_step(case: Case, run: RunFolder) -> dict[str, Any]:
    """Step 07 of the pipeline: the report reads only the run folder, so the case itself is not needed."""
    report = build(run.root)
    return {"html": str(report.html), "pdf": str(report.pdf), "pages": report.pages,
            "refused_urls": len(report.refused)}
