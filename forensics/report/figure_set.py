"""The run's figures as data URIs, so the HTML opens anywhere and the PDF fetches nothing."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from forensics.report.constants import MAX_FIGURE_BYTES


class FigureSet:
    """The run's figures as data URIs, so the HTML opens from anywhere and the PDF fetches nothing.

    Named slots (``lr_scale``, ``line_<line>``, ``tippett``) are taken by the sections that show them;
    whatever is left is shown at the end of the findings, so every figure the run produced appears.
    """

    def __init__(self, run_dir: Path) -> None:
        self._stems: dict[str, Path] = {}
        folder = run_dir / "figures"
        paths = sorted(folder.iterdir()) if folder.is_dir() else []
        for path in paths:
            suffix = path.suffix.lower()
            # PNG wins over an SVG of the same stem: smaller, and drawn the same by every renderer.
            wanted = suffix == ".png" or (suffix == ".svg" and path.stem not in self._stems)
            if wanted and path.is_file():
                self._stems[path.stem] = path
        self._taken: set[str] = set()

    def take(self, stem: str) -> dict[str, Any]:
        """The figure for a slot, or a note naming the file that was not produced."""
        self._taken.add(stem)
        path = self._stems.get(stem)
        return self._load(path) if path else {"src": None, "missing": f"figures/{stem}.png", "name": stem}

    def leftovers(self) -> list[dict[str, Any]]:
        return [self._load(p) for stem, p in sorted(self._stems.items()) if stem not in self._taken]

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        rel, size = f"figures/{path.name}", path.stat().st_size
        if size > MAX_FIGURE_BYTES:
            return {"src": None, "missing": f"{rel} ({size:,} bytes, too large to embed)", "name": path.stem}
        mime = "image/png" if path.suffix.lower() == ".png" else "image/svg+xml"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return {"src": f"data:{mime};base64,{data}", "missing": None, "name": path.stem, "rel": rel}


# --------------------------------------------------------------------------------------------------
# Exhibits, method, limitations, custody
