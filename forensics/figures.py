"""Every figure of the suite, as ``matplotlib.figure.Figure`` objects.

Why this shape:

* **No pyplot, no ``matplotlib.use()``.** A bare ``Figure`` needs no display and no global figure
  manager, so the same function works headless (papermill, the report, tests) and in a notebook, where
  the inline backend displays a returned ``Figure``. Forcing a backend at import would make figures
  vanish from executed notebooks.
* **Deterministic bytes.** Figures are built under one fixed style (``STYLE``); the SVG id salt is fixed
  at import (only when the user has not set one: the backend reads it at save time), and
  ``RunFolder.write_figure`` strips dates and software versions. Re-running a case gives byte-identical
  PNG and SVG files, so their hashes in the manifest can be compared.
* **Colour-blind safe, keyed by role.** Okabe-Ito colours: the suspect is always vermillion with a large
  star; each teacher gets its own colour *and* marker; references are muted greys told apart by marker
  shape, so a reader who cannot separate the colours can still follow every source. Every figure has a
  legend.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from forensics.lr_words import VERBAL_BANDS as LR_BANDS
from forensics.lr_words import lr_value
from forensics.roles import ROLES, HasRoles, roles_of

# Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
SUSPECT_COLOR = OKABE_ITO["vermillion"]
TEACHER_COLORS = (OKABE_ITO["blue"], OKABE_ITO["bluish_green"], OKABE_ITO["reddish_purple"],
                  OKABE_ITO["orange"], OKABE_ITO["sky_blue"], OKABE_ITO["black"])
TEACHER_MARKERS = ("D", "P", "X", "h", "p", "8")
REFERENCE_COLORS = ("#8C8C8C", "#5F5F5F", "#B0B0B0", "#767676")
REFERENCE_MARKERS = ("o", "s", "^", "v", "<", ">", "d", "H")
PANEL_GREY = "#9A9A9A"

STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",   # ships with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 100,
    "svg.fonttype": "path",         # text as paths: no dependence on the reader's fonts
    "svg.hashsalt": "forensics",
    "image.cmap": "cividis",        # perceptually uniform and colour-blind safe
}

if mpl.rcParams["svg.hashsalt"] is None:
    # Read by the SVG backend at save time, not at build time; without it ids are random per save.
    mpl.rcParams["svg.hashsalt"] = STYLE["svg.hashsalt"]

P = ParamSpec("P")
R = TypeVar("R")


def _styled(build: Callable[P, R]) -> Callable[P, R]:
    """Build a figure under the fixed STYLE whatever the caller's rcParams are, then freeze its layout."""
    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with mpl.rc_context(STYLE):
            figure = build(*args, **kwargs)
            if isinstance(figure, Figure):
                _freeze_layout(figure)
            return figure
    return wrapper


def _freeze_layout(figure: Figure) -> None:
    """Run the constrained layout to convergence (two passes) and keep its result.

    Constrained layout is iterative and starts from the current positions: one pass can leave titles
    overlapping, and each later save of a live figure nudges axes by ~1e-6, changing the SVG bytes. A
    frozen layout looks right and saves identically every time.
    """
    for _ in range(2):
        figure.draw_without_rendering()
    figure.set_layout_engine("none")


# --------------------------------------------------------------------------------------------------
# Roles and styles


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    size: float
    zorder: int
    alpha: float
    label: str


@dataclass(frozen=True)
class Roles:
    """Who is who in a case; decides each source's colour, marker and legend label."""

    suspect: str
    teachers: tuple[str, ...]
    references: tuple[str, ...]

    @classmethod
    def of(cls, obj: HasRoles | Roles) -> Roles:
        """From a Roles or anything with suspect/teachers/references (an ``AlignedCorpus``, a case)."""
        if isinstance(obj, Roles):
            return obj
        return cls(_name(obj.suspect), tuple(map(_name, obj.teachers)), tuple(map(_name, obj.references)))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Roles:
        """From a long table with ``source`` and ``role`` columns (role: suspect/teacher/reference)."""
        if "role" not in frame.columns:
            raise ValueError("pass roles=... or a 'role' column (suspect/teacher/reference)")
        pairs = frame[["source", "role"]].drop_duplicates()
        by_role = {r: list(pairs.loc[pairs["role"] == r, "source"]) for r in ROLES}
        if len(by_role["suspect"]) != 1:
            raise ValueError("the 'role' column must name exactly one suspect")
        return cls(by_role["suspect"][0], tuple(by_role["teacher"]), tuple(by_role["reference"]))

    @property
    def sources(self) -> list[str]:
        return [self.suspect, *self.teachers, *self.references]

    def role(self, source: str) -> str:
        """The source's role; a name the case does not know is drawn as a reference."""
        return roles_of(self).get(source, "reference")

    def style(self, source: str) -> Style:
        if source == self.suspect:
            return Style(SUSPECT_COLOR, "*", 110.0, 5, 1.0, f"{source} (suspect)")
        if source in self.teachers:
            i = self.teachers.index(source)
            return Style(TEACHER_COLORS[i % len(TEACHER_COLORS)], TEACHER_MARKERS[i % len(TEACHER_MARKERS)],
                         45.0, 4, 0.9, f"{source} (candidate teacher)")
        i = self.references.index(source) if source in self.references else len(self.references)
        return Style(REFERENCE_COLORS[i % len(REFERENCE_COLORS)],
                     REFERENCE_MARKERS[i % len(REFERENCE_MARKERS)], 22.0, 2, 0.55, f"{source} (reference)")

    def ordered(self, names: Sequence[str]) -> list[str]:
        """``names`` in role order (suspect, teachers, references), unknown names last in given order."""
        known = [s for s in self.sources if s in names]
        return known + [s for s in names if s not in known]


def _name(item: Any) -> str:
    return item if isinstance(item, str) else str(item.name)


def _roles(roles: HasRoles | Roles | None, frame: pd.DataFrame | None = None) -> Roles | None:
    if roles is not None:
        return Roles.of(roles)
    if frame is not None and "role" in frame.columns:
        return Roles.from_frame(frame)
    return None


def _legend_handle(style: Style) -> Line2D:
    return Line2D([], [], linestyle="none", marker=style.marker, color=style.color,
                  markersize=math.sqrt(style.size), markeredgecolor="black", markeredgewidth=0.4,
                  label=style.label)


def _role_legend(fig: Figure, roles: Roles | None, names: Sequence[str], extra: Sequence[Any] = (),
                 ncols: int = 4) -> None:
    """A figure-level legend below the plot: one entry per source in role order, then ``extra`` handles."""
    handles = [_legend_handle(roles.style(s)) for s in roles.ordered(names)] if roles else []
    handles += list(extra)
    fig.legend(handles=handles, loc="outside lower center", ncols=max(1, min(ncols, len(handles))))


def _color_ticklabels(labels: Sequence[Any], roles: Roles | None) -> None:
    """Suspect in bold vermillion, teachers bold in their colour, references plain."""
    if roles is None:
        return
    for label in labels:
        source = label.get_text()
        if source in roles.sources and roles.role(source) != "reference":
            label.set_color(roles.style(source).color)
            label.set_fontweight("bold")


# --------------------------------------------------------------------------------------------------
# 1. Per-prompt similarity to each teacher

SIMILARITY_LABEL = "Similarity to the teacher's answer beyond the panel's consensus (cosine; 0 = unrelated)"


@_styled
def similarity_distributions(per_prompt: pd.DataFrame, roles: HasRoles | Roles | None = None, *,
                             value_label: str = SIMILARITY_LABEL) -> Figure:
    """One panel per teacher: how close each model's answer is to the teacher's answer, prompt by prompt.

    ``per_prompt``: long table with columns teacher, source, prompt_key, similarity (and optionally role).
    Boxes show the middle half of the prompts, dots every prompt; the dashed line is the panel's median.
    """
    roles_ = _roles(roles, per_prompt)
    teachers = _order(per_prompt["teacher"].unique(), roles_.teachers if roles_ else ())
    fig = Figure(figsize=(4.2 * len(teachers), 0.5 + 0.45 * per_prompt["source"].nunique() + 1.2),
                 layout="constrained")
    axes = fig.subplots(1, len(teachers), sharex=True, squeeze=False)[0]
    for ax, teacher in zip(axes, teachers, strict=True):
        _similarity_panel(ax, per_prompt[per_prompt["teacher"] == teacher], teacher, roles_)
    fig.supxlabel(value_label)  # once for the row: repeated under every panel, the long label overlapped
    fig.suptitle("How close is each model's answer to the candidate teacher's answer to the same prompt?")
    median = Line2D([], [], color=PANEL_GREY, linestyle="--", label="median of the reference models")
    _role_legend(fig, roles_, list(per_prompt["source"].unique()), extra=[median])
    return fig


def _order(values: Sequence[str], preferred: Sequence[str]) -> list[str]:
    values = list(values)
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def _similarity_panel(ax: Any, frame: pd.DataFrame, teacher: str, roles: Roles | None) -> None:
    present = list(frame["source"].unique())
    sources = [s for s in (roles.ordered(present) if roles else sorted(present)) if s != teacher]
    data = [frame.loc[frame["source"] == s, "similarity"].to_numpy(float) for s in sources]
    positions = np.arange(len(sources))[::-1]
    ax.boxplot(data, positions=positions, orientation="horizontal", showfliers=False, widths=0.55,
               medianprops={"color": "black"}, tick_labels=sources)
    rng = np.random.default_rng(0)
    for pos, source, values in zip(positions, sources, data, strict=True):
        style = roles.style(source) if roles else Style(PANEL_GREY, "o", 12.0, 2, 0.5, source)
        jitter = rng.uniform(-0.18, 0.18, size=len(values))
        ax.scatter(values, pos + jitter, s=style.size / 4, c=style.color, marker=style.marker,
                   alpha=min(style.alpha, 0.6), linewidths=0, zorder=style.zorder)
    panel = [v for s, v in zip(sources, data, strict=True) if roles is None or roles.role(s) == "reference"]
    if panel and any(len(v) for v in panel):
        ax.axvline(float(np.median(np.concatenate(panel))), color=PANEL_GREY, linestyle="--", linewidth=1)
    ax.set_title(f"Candidate teacher: {teacher}")
    _color_ticklabels(ax.get_yticklabels(), roles)


# --------------------------------------------------------------------------------------------------
# 2. Source-to-source similarity heatmaps


@_styled
def similarity_heatmaps(emb_sim: pd.DataFrame, stylo_sim: pd.DataFrame,
                        roles: HasRoles | Roles | None = None) -> Figure:
    """Meaning (embeddings) and style (stylometry) similarity between every pair of sources, side by side.

    Both inputs are square DataFrames (index = columns = source names). Values are printed in the cells;
    the diagonal is left blank so the colour scale spans only the comparisons; the suspect and the
    teachers are highlighted in the tick labels.
    """
    roles_ = _roles(roles)
    n = max(len(emb_sim), len(stylo_sim))
    fig = Figure(figsize=(2.0 + 1.1 * n, 1.4 + 0.5 * n), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, matrix, title in ((axes[0], emb_sim, "Meaning: embedding similarity beyond the panel's consensus"),
                              (axes[1], stylo_sim, "Style: stylometric similarity")):
        _heatmap(fig, ax, matrix, roles_, title)
    fig.suptitle("Which models answer alike? Higher = more similar")
    names = list(dict.fromkeys([*emb_sim.index, *stylo_sim.index]))
    note = "bold tick label = suspect or candidate teacher" if roles_ else "cell value = similarity"
    _role_legend(fig, roles_, names, extra=[Patch(facecolor="none", edgecolor="none", label=note)], ncols=3)
    return fig


def _heatmap(fig: Figure, ax: Any, matrix: pd.DataFrame, roles: Roles | None, title: str) -> None:
    order = roles.ordered(list(matrix.index)) if roles else list(matrix.index)
    values = matrix.loc[order, order].to_numpy(float, copy=True)
    np.fill_diagonal(values, np.nan)  # self-similarity says nothing and would flatten the colour scale
    cmap = mpl.colormaps["cividis"].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="equal")
    ax.set_xticks(range(len(order)), order, rotation=40, ha="right")
    ax.set_yticks(range(len(order)), order)
    ax.spines[:].set_visible(False)
    low, high = np.nanmin(values), np.nanmax(values)
    middle = (low + high) / 2
    fontsize = 8 if len(order) <= 8 else 6
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=fontsize,
                    color="black" if value > middle else "white")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)
    _color_ticklabels(ax.get_xticklabels(), roles)
    _color_ticklabels(ax.get_yticklabels(), roles)


# --------------------------------------------------------------------------------------------------
# 3. Stylometric dendrogram


@_styled
def stylometric_dendrogram(distance: pd.DataFrame, roles: HasRoles | Roles | None = None) -> Figure:
    """Average-linkage tree of the sources from a square stylometric distance matrix; leaves by role.

    Drawn from scipy's coordinates (``no_plot=True``) rather than scipy's own plotting, which would
    import pyplot.
    """
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    roles_ = _roles(roles)
    names = list(distance.index)
    d = distance.loc[names, names].to_numpy(float)
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    tree = dendrogram(linkage(squareform(d, checks=False), method="average"), no_plot=True, labels=names)
    fig = Figure(figsize=(6.5, 1.6 + 0.38 * len(names)), layout="constrained")
    ax = fig.subplots()
    for xs, ys in zip(tree["icoord"], tree["dcoord"], strict=True):
        ax.plot(ys, xs, color="#4D4D4D", linewidth=1.2)
    leaves = tree["ivl"]
    positions = 5 + 10 * np.arange(len(leaves))
    for pos, source in zip(positions, leaves, strict=True):
        style = roles_.style(source) if roles_ else Style(PANEL_GREY, "o", 30.0, 3, 1.0, source)
        ax.scatter([0], [pos], s=style.size, c=style.color, marker=style.marker, edgecolors="black",
                   linewidths=0.4, zorder=style.zorder, clip_on=False)
    ax.set_yticks(positions, leaves)
    ax.set_ylim(0, 10 * len(leaves))
    ax.set_xlim(left=0)
    ax.invert_xaxis()
    ax.yaxis.tick_right()
    ax.spines[["left", "top"]].set_visible(False)
    ax.spines["right"].set_visible(True)
    _color_ticklabels(ax.get_yticklabels(), roles_)
    ax.set_xlabel("Stylometric distance at which groups join (lower = more alike in style)")
    ax.set_title("Which models write alike? Average-linkage clustering of writing style")
    joins = Line2D([], [], color="#4D4D4D", label="where two groups join")
    _role_legend(fig, roles_, names, extra=[joins], ncols=3)
    return fig


# --------------------------------------------------------------------------------------------------
# 4. UMAP map


@_styled
def umap_map(coords: pd.DataFrame, roles: HasRoles | Roles | None = None, *,
             show_cluster_ids: bool = True) -> Figure:
    """Every answer as a point; nearby points are answers with similar meaning.

    ``coords``: long table with prompt_key, source, x, y and optionally cluster and role (the
    ``umap.parquet`` artifact). References are drawn first and muted, then teachers, then the suspect.
    Cluster ids (grey numbers at each cluster's median) match ``clusters.json`` and ``show_pairs``.
    """
    roles_ = _roles(roles, coords) or Roles("", (), tuple(sorted(coords["source"].unique())))
    fig = Figure(figsize=(7.5, 6.0), layout="constrained")
    ax = fig.subplots()
    names = list(coords["source"].unique())
    for source in reversed(roles_.ordered(names)):
        style = roles_.style(source)
        rows = coords[coords["source"] == source]
        ax.scatter(rows["x"], rows["y"], s=style.size / 2, c=style.color, marker=style.marker,
                   alpha=style.alpha, linewidths=0.2, edgecolors="black" if style.zorder >= 4 else "none",
                   zorder=style.zorder, label=style.label)
    if show_cluster_ids and "cluster" in coords.columns:
        _cluster_ids(ax, coords)
    ax.set_xlabel("UMAP 1 (no units: only closeness matters)")
    ax.set_ylabel("UMAP 2")
    ax.set_title("Map of all answers: each point is one answer, close points are similar in meaning")
    handles = [_legend_handle(roles_.style(s)) for s in roles_.ordered(names)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _cluster_ids(ax: Any, coords: pd.DataFrame) -> None:
    clustered = coords[coords["cluster"] >= 0]
    for cluster, rows in clustered.groupby("cluster", sort=True):
        ax.text(float(rows["x"].median()), float(rows["y"].median()), str(cluster), fontsize=8,
                color="#333333", ha="center", va="center", zorder=6,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.7, "linewidth": 0})


# --------------------------------------------------------------------------------------------------
# 5. One line of evidence: suspect vs panel, per teacher


@_styled
def line_summary(entries: Mapping[str, Mapping[str, Any]], *, title: str, value_label: str,
                 suspect: str = "suspect", label_panel: bool = False,
                 xlim: tuple[float, float] | None = None) -> Figure:
    """Dot plot: for each teacher, the panel's values (grey) and the suspect's value (vermillion star).

    ``entries`` maps teacher name to a per-line evidence entry (``suspect_value``, ``panel_values`` and
    optionally ``ci95``, ``z``, ``p_value``), exactly as in ``findings.json``, so the report can reuse
    it for every line. The suspect's bootstrap interval is drawn as a bar; z and p are printed at right.
    ``xlim`` fixes the axis for bounded measures (a rate: ``(0, 1)``) so equal values do not fill it.
    """
    teachers = list(entries)
    fig = Figure(figsize=(7.0, 1.6 + 0.7 * len(teachers)), layout="constrained")
    ax = fig.subplots()
    for row, teacher in enumerate(teachers):
        y = len(teachers) - 1 - row
        _line_row(ax, y, entries[teacher], label_panel)
    ax.set_yticks(range(len(teachers)), teachers[::-1])
    ax.set_ylim(-0.7, len(teachers) - 0.3)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel(value_label)
    ax.set_ylabel("candidate teacher")
    ax.set_title(title)
    panel = Line2D([], [], linestyle="none", marker="o", color=PANEL_GREY, label="reference models (panel)")
    handles = [panel, _legend_handle(Style(SUSPECT_COLOR, "*", 110.0, 5, 1.0, f"{suspect} (suspect)"))]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    return fig


def _line_row(ax: Any, y: float, entry: Mapping[str, Any], label_panel: bool) -> None:
    panel = entry.get("panel_values") or {}
    offsets = np.linspace(-0.15, 0.15, len(panel)) if len(panel) > 1 else np.zeros(len(panel))
    for offset, (name, value) in zip(offsets, sorted(panel.items()), strict=True):
        if value is None:
            continue
        ax.scatter([value], [y + offset], s=28, c=PANEL_GREY, marker="o", zorder=3)
        if label_panel:
            ax.annotate(name, (value, y + offset), xytext=(3, 0), textcoords="offset points", fontsize=6,
                        color="#666666", va="center")
    value = entry.get("suspect_value")
    if value is None:
        return
    ci = entry.get("ci95")
    if ci and None not in ci:
        ax.plot(ci, [y, y], color=SUSPECT_COLOR, linewidth=2, alpha=0.6, zorder=4)
    ax.scatter([value], [y], s=150, c=SUSPECT_COLOR, marker="*", edgecolors="black", linewidths=0.5, zorder=5)
    ax.annotate(_z_p_text(entry), (1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                textcoords="offset points", fontsize=8, va="center")


def _z_p_text(entry: Mapping[str, Any]) -> str:
    parts = []
    if entry.get("z") is not None:
        parts.append(f"z = {entry['z']:+.1f}")
    if entry.get("p_value") is not None:
        parts.append(f"p = {entry['p_value']:.3g}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------------
# 6. Tippett plot


@_styled
def tippett_plot(log10_lrs_hp: Sequence[float], log10_lrs_hd: Sequence[float]) -> Figure:
    """Share of validation cases whose log10 LR is at least x, for cases where Hp is true and where Hd is.

    A good method keeps the Hp curve high to the right of 0 and the Hd curve low; where a curve crosses
    x = 0 reads off the rate of misleading evidence, which the legend states.
    """
    hp = np.sort(np.asarray(log10_lrs_hp, dtype=float))
    hd = np.sort(np.asarray(log10_lrs_hd, dtype=float))
    both = np.concatenate([hp, hd])
    low, high = (float(both.min()), float(both.max())) if both.size else (-1.0, 1.0)
    grid = np.linspace(min(low, -1.0) - 0.5, max(high, 1.0) + 0.5, 801)
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    _tippett_curve(ax, grid, hp, float(np.mean(hp < 0)) if hp.size else 0.0, OKABE_ITO["blue"], "-",
                   "Hp true (trained on the teacher)", "LR < 1")
    _tippett_curve(ax, grid, hd, float(np.mean(hd > 0)) if hd.size else 0.0, SUSPECT_COLOR, "--",
                   "Hd true (independent)", "LR > 1")
    ax.axvline(0.0, color="black", linewidth=1, label="log10 LR = 0 (LR = 1: no support either way)")
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("log10 likelihood ratio x (positive supports 'trained on the teacher')")
    ax.set_ylabel("Share of cases with log10 LR at least x")
    ax.set_title("Tippett plot: the method's likelihood ratios on cases with known answers")
    ax.legend(loc="lower left", fontsize=7)
    return fig


def _tippett_curve(ax: Any, grid: np.ndarray, values: np.ndarray, misleading: float, color: str,
                   dash: str, name: str, wrong: str) -> None:
    """Share of sorted ``values`` at least each grid point; the misleading-evidence rate goes in the label."""
    if not values.size:
        return
    share = 1.0 - np.searchsorted(values, grid, side="left") / values.size
    ax.step(grid, share, where="post", color=color, linestyle=dash, linewidth=1.8,
            label=f"{name}: n = {values.size}, misleading ({wrong}) {misleading:.0%}")


# --------------------------------------------------------------------------------------------------
# 7. The LR scale for the report's first page

def _band_label(phrase: str) -> str:
    """'moderately strong support' -> 'moderately\nstrong': the scale's words, short enough for a band."""
    words = phrase.removesuffix(" support")
    return words.replace(" ", "\n") if len(words) > len("very strong") else words


#: The verbal bands drawn (ENFSI 2015, from :data:`forensics.lr_words.VERBAL_BANDS`), without the first
#: ("no meaningful support"), whose place the case's inconclusive band takes.
VERBAL_BANDS: tuple[tuple[float, float, str], ...] = tuple(
    (low, high, _band_label(phrase)) for low, high, phrase in LR_BANDS[1:])
_HP_SHADES = ("#DCEBF5", "#BBD7EB", "#8FBEDF", "#5EA1CF", "#2F7FBA", "#0B5A94")
_HD_SHADES = ("#FBE6D6", "#F6CBAB", "#EFAA79", "#E5874A", "#D96A22", "#A8490A")


@_styled
def lr_scale_figure(log10_lr: float, band: Sequence[float], verbal: str, *,
                    bounds: Sequence[float] | None = None,
                    scale: Sequence[tuple[float, float, str]] = VERBAL_BANDS) -> Figure:
    """A horizontal log10 LR scale with the verbal bands, the inconclusive band and this case's value.

    ``band`` is the case's inconclusive band ``[low, high]`` in log10 LR; ``verbal`` the words reported
    for this value; ``bounds`` optionally the ELUB limits, drawn as brackets. Blue shades support Hp
    (trained on the teacher), orange shades support Hd (independent development).
    """
    limit = max(7.0, abs(log10_lr) + 0.5)
    fig = Figure(figsize=(9.0, 3.0), layout="constrained")
    ax = fig.subplots()
    _draw_bands(ax, scale, limit)
    ax.axvspan(band[0], band[1], facecolor="none", edgecolor="#555555", hatch="///", linewidth=0.0,
               label=f"inconclusive band (log10 LR {band[0]:+.2f} to {band[1]:+.2f})")
    if bounds is not None:
        for edge in bounds:
            ax.axvline(edge, color="#333333", linestyle=":", linewidth=1.4)
        ax.plot([], [], color="#333333", linestyle=":", linewidth=1.4,
                label="limits the validation data can support")
    ax.axvline(0.0, color="black", linewidth=1.0)
    ax.scatter([log10_lr], [0.86], s=160, marker="v", c="black", edgecolors="white", zorder=6,
               label=f"this case: log10 LR = {log10_lr:+.2f} ({_lr_words(log10_lr)})")
    ax.annotate(verbal, (log10_lr, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 4),
                textcoords="offset points", ha="center", va="bottom", fontsize=9, fontweight="bold")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.spines[["left", "top", "right"]].set_visible(False)
    ax.set_xlabel("log10 likelihood ratio   \u2190 supports independent development (Hd)  |  "
                  "supports training on the teacher (Hp) \u2192")
    ax.set_title("Strength of the evidence on the likelihood-ratio scale", pad=18)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, markerscale=0.6)
    return fig


def _draw_bands(ax: Any, scale: Sequence[tuple[float, float, str]], limit: float) -> None:
    """Shaded verbal bands on both sides of 0, labelled vertically so narrow bands stay legible."""
    for i, (low, high, words) in enumerate(scale):
        hi = min(high, limit)
        if hi <= low:
            continue
        for sign, shades in ((1, _HP_SHADES), (-1, _HD_SHADES)):
            a, b = sorted((sign * low, sign * hi))
            ax.axvspan(a, b, color=shades[min(i, len(shades) - 1)], linewidth=0)
            wide = b - a > 1.5
            ax.text((a + b) / 2, 0.04, words.replace("\n", " ") if wide else words,
                    rotation=0 if wide else 90, ha="center", va="bottom", fontsize=7,
                    color="white" if i >= 4 else "black", linespacing=0.9)


def _lr_words(log10_lr: float) -> str:
    """'LR about 500' or 'LR about 1/500' (:func:`forensics.lr_words.lr_value`); a power of ten beyond
    10^12, where two significant figures would still print a dozen digits."""
    if abs(log10_lr) > 12:
        return f"LR about 10^{log10_lr:.0f}"
    return f"LR about {lr_value(log10_lr)}"
