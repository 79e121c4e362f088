"""Every figure builds headless from tiny inputs, has a legend, and saves to identical bytes twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from forensics import figures
from forensics.custody import RunFolder
from forensics.figures import Roles

ROLES = Roles("student", ("teacher-a", "teacher-b"), ("ref-1", "ref-2", "ref-3"))


def per_prompt() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for teacher in ROLES.teachers:
        for source in [s for s in ROLES.sources if s != teacher]:
            shift = 0.15 if (source == "student" and teacher == "teacher-a") else 0.0
            for i in range(12):
                rows.append({"teacher": teacher, "source": source, "prompt_key": f"p{i}",
                             "similarity": float(np.clip(0.6 + shift + 0.1 * rng.normal(), -1, 1))})
    return pd.DataFrame(rows)


def square(seed: int, similarity: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ROLES.sources)
    m = rng.uniform(0.2, 0.9, size=(n, n))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0 if similarity else 0.0)
    return pd.DataFrame(m, index=ROLES.sources, columns=ROLES.sources)


def coords() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for source in ROLES.sources:
        for i in range(10):
            rows.append({"prompt_key": f"p{i}", "source": source, "x": float(rng.normal() + i % 3 * 4),
                         "y": float(rng.normal()), "cluster": i % 3 if i < 9 else -1,
                         "role": ROLES.role(source)})
    return pd.DataFrame(rows)


def entries() -> dict:
    return {"teacher-a": {"suspect_value": 0.8, "panel_values": {"ref-1": 0.5, "ref-2": 0.45, "ref-3": 0.55},
                          "z": 6.0, "ci95": [0.7, 0.9], "p_value": 0.001},
            "teacher-b": {"suspect_value": 0.4, "panel_values": {"ref-1": 0.42, "ref-2": 0.39, "ref-3": 0.44},
                          "z": -0.5, "ci95": [0.3, 0.5], "p_value": 0.7}}


BUILDERS: dict[str, Callable[[], Figure]] = {
    "similarity_distributions": lambda: figures.similarity_distributions(per_prompt(), ROLES),
    "similarity_heatmaps": lambda: figures.similarity_heatmaps(square(2), square(3), ROLES),
    "stylometric_dendrogram": lambda: figures.stylometric_dendrogram(square(4, similarity=False), ROLES),
    "umap_map": lambda: figures.umap_map(coords()),
    "line_summary": lambda: figures.line_summary(entries(), title="Embedding similarity", suspect="student",
                                                 value_label="mean cosine similarity to the teacher"),
    "tippett_plot": lambda: figures.tippett_plot([2.5, 1.2, 3.1, -0.4, 0.8], [-2.0, -1.1, 0.3, -3.0]),
    "lr_scale_figure": lambda: figures.lr_scale_figure(2.7, (-1.0, 1.0), "moderately strong support for Hp",
                                                       bounds=(-2.0, 2.9)),
}


def has_legend(fig: Figure) -> bool:
    return bool(fig.legends) or any(ax.get_legend() is not None for ax in fig.axes)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_figure_builds_has_legend_and_saves_identically(name: str, tmp_path: Path) -> None:
    first = BUILDERS[name]()
    assert isinstance(first, Figure) and has_legend(first)
    written = {}
    # the same figure saved twice, then a rebuilt one
    for folder, fig in (("a", first), ("b", first), ("c", BUILDERS[name]())):
        paths = RunFolder(tmp_path / folder).write_figure(f"figures/{name}", fig, step="test")
        written[folder] = {p.suffix: p.read_bytes() for p in paths}
    assert written["a"][".png"].startswith(b"\x89PNG")
    assert b"<svg" in written["a"][".svg"]
    assert written["a"] == written["b"] == written["c"]


def test_umap_map_with_explicit_roles_and_no_cluster_column() -> None:
    fig = figures.umap_map(coords().drop(columns=["cluster", "role"]), ROLES)
    assert has_legend(fig)


def test_figures_without_roles_still_have_legends() -> None:
    frame = per_prompt()
    assert has_legend(figures.similarity_distributions(frame))
    assert has_legend(figures.similarity_heatmaps(square(2), square(3)))
    assert has_legend(figures.stylometric_dendrogram(square(4, similarity=False)))
    assert has_legend(figures.tippett_plot([1.0, 2.0], []))
    assert has_legend(figures.lr_scale_figure(-8.2, (-1.0, 1.0), "very strong support for Hd"))


def test_role_styles_are_distinguishable() -> None:
    styles = {s: ROLES.style(s) for s in ROLES.sources}
    assert styles["student"].color == figures.SUSPECT_COLOR
    assert styles["student"].size > max(s.size for n, s in styles.items() if n != "student")
    teachers = [styles[t] for t in ROLES.teachers]
    assert len({t.color for t in teachers}) == len({t.marker for t in teachers}) == 2
    assert len({styles[r].marker for r in ROLES.references}) == 3


def test_roles_from_frame_and_from_corpus_like() -> None:
    assert Roles.from_frame(coords()) == ROLES
    corpus = type("C", (), {"suspect": "s", "teachers": ["t"], "references": ["r"]})()
    assert Roles.of(corpus).sources == ["s", "t", "r"]


def test_lr_words() -> None:
    assert figures._lr_words(2.7) == "LR about 500"
    assert figures._lr_words(-1.0) == "LR about 1/10"


def test_module_needs_no_display_and_never_imports_pyplot() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    code = ("import io, sys; from forensics import figures; "
            "figures.tippett_plot([1.0], [-1.0]).savefig(io.BytesIO(), format='png'); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
