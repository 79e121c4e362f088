"""What every numbered notebook does first and last: open the case and run folder, time the step.

Kept in the package so notebooks stay thin (a parameters cell, a call, displays) and so the same code is
exercised by the tests and by ``forensics run``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from forensics.case import Case, load_case
from forensics.custody import RunFolder, utc_now
from forensics.escaping import escaped_html
from forensics.scoring import MIN_PANEL


def open_case(case_file: str | Path, run_dir: str | Path) -> tuple[Case, RunFolder]:
    """Load and validate the case file (with a panel the evidence steps can use) and open its run folder."""
    return load_case(Path(case_file), min_references=MIN_PANEL), RunFolder(Path(run_dir))


@contextlib.contextmanager
def step(run: RunFolder, name: str) -> Iterator[None]:
    """Record the step's start, end and status in the manifest (a failed step is recorded as failed), having
    first discarded what later steps wrote from the earlier data (:meth:`RunFolder.discard_after`)."""
    run.discard_after(name)
    started = utc_now()
    status = "failed"
    try:
        yield
        status = "ok"
    finally:
        manifest = run.manifest()
        manifest.record_step(name, started, utc_now(), status)
        manifest.save()


class StepModule(Protocol):
    """A step's module (``exchanges``, ``embeddings``, ... ``report``): all share one signature."""

    def run_step(self, case: Case, run: RunFolder) -> dict[str, Any]: ...


def run_step(module: StepModule, case: Case, run: RunFolder, name: str) -> dict[str, Any]:
    """Run one module's ``run_step`` inside :func:`step` (which records it in the manifest, once) and
    return its summary."""
    with step(run, name):
        return module.run_step(case, run)


def escaped(text: str, limit: int = 2000) -> str:
    """Model output made inert for HTML display in a notebook, shortened with a visible note (the same
    treatment as in the report: :func:`forensics.escaping.escaped_html`)."""
    return escaped_html(text, limit)


def heading(text: str) -> Any:
    """A heading for a notebook display, as inert HTML: through Markdown, an escaped name such as
    ``![x](https://host/a.png)`` would still render as a remote image or a live link."""
    from IPython.display import HTML

    return HTML(f"<h3>{escaped(text, 200)}</h3>")


def paragraphs(texts: list[str], bullets: bool = False) -> Any:
    """Sentences (a statement, the limitations) for a notebook display, as inert HTML (:func:`heading`)."""
    from IPython.display import HTML

    if bullets:
        return HTML("<ul>" + "".join(f"<li>{escaped(t)}</li>" for t in texts) + "</ul>")
    return HTML("".join(f"<p>{escaped(t)}</p>" for t in texts))


def show_json(data: Any) -> Any:
    """Pretty JSON display for notebooks (IPython's JSON viewer when available)."""
    from IPython.display import JSON

    return JSON(data, expanded=False)
