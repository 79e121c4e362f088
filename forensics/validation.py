"""Validation on labelled cases: leave-one-lineage-out, with the error rates every report quotes.

A labelled benchmark is a folder of exchange files plus ``LABELS.csv`` with at least the columns
``file``, ``role`` (``teacher``, ``student``, ``control`` or ``reference``) and ``trained_on_outputs_of``
(the teacher(s) a student learned from; anything for others); an optional ``lineage`` column groups
derivatives of one model (sizes, versions, re-tunes), otherwise the first word of the file name does.

Every student and control becomes a case: the teachers are the candidates, and the panel is every
reference and control outside the suspect's lineage. The case is scored with exactly the functions the
pipeline uses. Calibration and validation are split by lineage, never by response: each lineage's pairs
get likelihood ratios from a calibration fitted without that lineage, so a model's siblings never
calibrate it. Nothing here names a model: roles and teachers come from the labels file.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forensics import evidence
from forensics.calibration import DEFAULT_CALIBRATION, Calibration, cllr, supports
from forensics.case import Parameters
from forensics.custody import atomic_write_json, atomic_write_text, sha256_file
from forensics.errors import InputError
from forensics.exchanges import AlignedCorpus

REQUIRED_COLUMNS = ("file", "role", "trained_on_outputs_of")
SUSPECT_ROLES = ("student", "control")
PANEL_ROLES = ("reference", "control")
#: Bumped whenever the scoring changes, so an old calibration file is recognisably stale.
METHOD_VERSION = "panel-relative-fused-v2"


@dataclass
class Benchmark:
    labels: pd.DataFrame
    prompt_keys: list[str]
    prompts: list[str]
    responses: dict[str, list[str]]
    data_sha256: str
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    openings: dict[str, np.ndarray] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- loading

def lineage_of(row: pd.Series) -> str:
    """The lineage label: the ``lineage`` column if given, else the first word of the file name."""
    given = row.get("lineage")
    if isinstance(given, str) and given.strip():
        return given.strip().lower()
    return re.split(r"[-_.\s]", Path(str(row["file"])).stem.lower())[0]


def teacher_matches(label: str, teacher_name: str) -> bool:
    """Whether a documented teacher (``"x-4"``, ``"mixed: a and b"``) names this teacher.

    ``teacher_name`` holds the teacher's aliases separated by ``|`` (see :func:`teacher_aliases`). A label
    names a teacher when an alias equals it or extends it with a version suffix (label ``x-4`` matches
    ``x-4-0314`` but not ``x-40``).
    """
    aliases = [a for a in str(teacher_name).lower().split("|") if a]
    for part in re.split(r"[,:;]|\band\b|\bor\b", str(label).lower()):
        part = part.strip()
        if part and any(a == part or a.startswith(part + "-") or a.startswith(part + "_") for a in aliases):
            return True
    return False


def teacher_aliases(model: str, stem: str) -> str:
    """Names a teacher may be documented under: the file's stem and every word-suffix of the model column.

    ``"Vendor Model 2"`` in file ``model-2.json`` gives ``model-2|vendor-model-2|model-2|2``: a label
    ``model-2`` then matches whichever way the labels file spells the model.
    """
    words = str(model).split()
    suffixes = ["-".join(words[i:]).lower() for i in range(len(words))]
    return "|".join(dict.fromkeys([stem.lower(), *suffixes]))


def load_labels(labels_csv: Path) -> pd.DataFrame:
    if not labels_csv.exists():
        raise InputError("labels file not found", path=labels_csv, fix="give the path of LABELS.csv")
    labels = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in labels.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path=labels_csv, line=1,
                         fix=f"the header needs {', '.join(REQUIRED_COLUMNS)}")
    labels["name"] = [Path(f).stem for f in labels["file"]]
    labels["lineage"] = [lineage_of(r) for _, r in labels.iterrows()]
    model_col = labels["model"] if "model" in labels.columns else labels["name"]
    labels["teacher_name"] = [teacher_aliases(m, n) for m, n in zip(model_col, labels["name"], strict=True)]
    return labels.sort_values("name", kind="stable").reset_index(drop=True)


def load_benchmark(labels_csv: Path, max_response_chars: int = 20000) -> Benchmark:
    """Read every labelled file and join them on the normalised prompt (prompts all answered, non-empty)."""
    from forensics.exchanges import read_exchanges, text_prompt_key

    labels = load_labels(labels_csv)
    folder = labels_csv.parent
    frames, digest = {}, hashlib.sha256(METHOD_VERSION.encode())
    digest.update(labels_csv.read_bytes())
    for _, row in labels.iterrows():
        read = read_exchanges(folder / row["file"], max_response_chars=max_response_chars)
        digest.update(read.sha256.encode())
        frame = read.frame[~read.frame["empty"].astype(bool)]
        frames[row["name"]] = dict(zip(frame["prompt_norm"], zip(frame["prompt"], frame["response"], strict=True),
                                       strict=True))
    common = sorted(set.intersection(*(set(f) for f in frames.values())), key=text_prompt_key)
    keys = [text_prompt_key(p) for p in common]
    first = labels["name"].iloc[0]
    return Benchmark(labels=labels, prompt_keys=keys, prompts=[frames[first][p][0] for p in common],
                     responses={n: [f[p][1] for p in common] for n, f in frames.items()},
                     data_sha256=digest.hexdigest())


def embed_benchmark(bench: Benchmark, model: str | None = None, opening_words: int | None = None) -> None:
    """Embed every labelled answer and its opening, as the pipeline's step 01 does."""
    from forensics.embeddings import Embedder, embed_corpus

    embedder = Embedder(model)
    names = sorted(bench.responses)
    every = AlignedCorpus(bench.prompt_keys, bench.prompts, {n: bench.responses[n] for n in names},
                          names[0], [], names[1:])
    bench.vectors, bench.openings = embed_corpus(every, embedder, progress="embedding the benchmark",
                                                 opening_words=opening_words)
    print(embedder.stats_line(), file=sys.stderr)


# ----------------------------------------------------------------------------------------- scoring

def benchmark_cases(bench: Benchmark) -> list[AlignedCorpus]:
    labels = bench.labels
    teachers = list(labels.loc[labels["role"] == "teacher", "name"])
    cases = []
    for _, row in labels[labels["role"].isin(SUSPECT_ROLES)].iterrows():
        panel = list(labels.loc[labels["role"].isin(PANEL_ROLES) & (labels["lineage"] != row["lineage"])
                                & (labels["name"] != row["name"]), "name"])
        sources = [row["name"], *teachers, *panel]
        cases.append(AlignedCorpus(bench.prompt_keys, bench.prompts, {s: bench.responses[s] for s in sources},
                                row["name"], teachers, panel))
    return cases


def score_case(corpus: AlignedCorpus, vectors: dict[str, np.ndarray], openings: dict[str, np.ndarray],
               params: Parameters) -> dict[str, Any]:
    """The pipeline's scoring (steps 02-04 and 06) applied in memory to one benchmark case."""
    from forensics.findings import score_lines
    from forensics.markers import marker_rates
    from forensics.scoring import case_bootstrap
    from forensics.semantic import semantic_line
    from forensics.stylometry import stylometric_similarities

    boot_idx = case_bootstrap(corpus, params)
    semantic = semantic_line(corpus, {s: openings[s] for s in corpus.sources}, boot_idx,
                             full_vectors={s: vectors[s] for s in corpus.sources},
                             opening_words=params.opening_words)
    stylo = {"sources": corpus.sources, "families": stylometric_similarities(corpus, boot_idx, params)}
    markers = {"teachers": marker_rates(corpus, boot_idx, params)}
    return score_lines(semantic, stylo, markers, corpus.suspect, corpus.teachers, corpus.references)


def pair_table(bench: Benchmark, params: Parameters) -> pd.DataFrame:
    """One row per (suspect, teacher): label, lineage, every line's z, the fused score, its win share."""
    labels = bench.labels.set_index("name")
    rows = []
    for corpus in benchmark_cases(bench):
        print(f"scoring {corpus.suspect} against {len(corpus.references)} references", file=sys.stderr)
        scored = score_case(corpus, bench.vectors, bench.openings, params)
        documented = labels.loc[corpus.suspect, "trained_on_outputs_of"]
        for t in corpus.teachers:
            rows.append({"suspect": corpus.suspect, "teacher": t, "role": labels.loc[corpus.suspect, "role"],
                         "lineage": labels.loc[corpus.suspect, "lineage"],
                         "hp": int(labels.loc[corpus.suspect, "role"] == "student"
                                   and teacher_matches(documented, labels.loc[t, "teacher_name"])),
                         **{f"z_{line}": scored["line_z"][line][t] for line in scored["line_z"]},
                         **{f"z_family_{fam}": v["z"] for fam, v in scored["stylometry"][t]["families"].items()},
                         "score": scored["fused"][t], "beats_share": scored["beats"][t],
                         "n_panel": len(corpus.references)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- validation

def leave_one_lineage_out(pairs: pd.DataFrame, band: tuple[float, float]) -> pd.DataFrame:
    """Add ``log10_lr`` to each pair from a calibration fitted without the pair's lineage."""
    out = pairs.copy()
    out["log10_lr"] = np.nan
    for lineage in sorted(out["lineage"].unique()):
        train = out[out["lineage"] != lineage]
        cal = Calibration.fit(train["score"].to_numpy(), train["hp"].to_numpy())
        test = out["lineage"] == lineage
        out.loc[test, "log10_lr"] = cal.transform(out.loc[test, "score"].to_numpy())
    out["supports"] = [supports(v, band) for v in out["log10_lr"]]
    out["beats"] = out["beats_share"] >= evidence.BEATS_LEVEL
    return out


def case_outcomes(pairs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for suspect, group in pairs.groupby("suspect", sort=True):
        teachers = [{"name": r.teacher, "supports": r.supports, "beats_other_candidates": bool(r.beats),
                     "log10_lr": r.log10_lr} for r in group.itertuples()]
        decision = evidence.decide(teachers)
        documented = set(group.loc[group["hp"] == 1, "teacher"])
        attributed = decision["attributed_teacher"]
        supported = decision["candidates_supported"]
        rows.append({"suspect": suspect, "role": group["role"].iloc[0], "lineage": group["lineage"].iloc[0],
                     "documented": ", ".join(sorted(documented)) or "none", "attributed": attributed or "none",
                     "outcome": decision["outcome"], "supported": ", ".join(sorted(supported)) or "none",
                     "correct": (attributed in documented) if documented else attributed is None,
                     "documented_supported": bool(documented & set(supported)) if documented else not supported})
    return pd.DataFrame(rows)


def line_leanings(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per student and per line of evidence (fused or not): the candidate that line ranks first.

    When a student is not attributed to its documented teacher, this shows whether one line disagrees (a
    weakness of the method) or every line prefers another candidate (the outputs look like that teacher's:
    the label may be incomplete, or the student learned from a snapshot or sibling the case lacks).
    """
    lines = [c for c in pairs.columns if c.startswith("z_")]
    rows = []
    for suspect, group in pairs[pairs["role"] == "student"].groupby("suspect", sort=True):
        documented = set(group.loc[group["hp"] == 1, "teacher"])
        row: dict[str, Any] = {"suspect": suspect, "documented": ", ".join(sorted(documented))}
        for line in lines:
            values = group[line].astype(float)
            row[line.removeprefix("z_")] = group["teacher"].iloc[int(np.nanargmax(values))] \
                if values.notna().any() else ""
        top = [row[line.removeprefix("z_")] for line in lines]
        row["lines_favouring_documented"] = f"{sum(t in documented for t in top)} of {len(top)}"
        rows.append(row)
    return pd.DataFrame(rows)


def summarise(pairs: pd.DataFrame, cases: pd.DataFrame) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    hp, hd = pairs[pairs["hp"] == 1], pairs[pairs["hp"] == 0]
    c, c_min = cllr(pairs["log10_lr"].to_numpy(), pairs["hp"].to_numpy())
    students, controls = cases[cases["role"] == "student"], cases[cases["role"] == "control"]
    per_teacher = {}
    for t in sorted(pairs["teacher"].unique()):
        own = cases[cases["documented"].str.split(", ").apply(lambda names, t=t: t in names)]
        per_teacher[t] = {"students": len(own), "attributed_correctly": int(own["correct"].sum())}
    return {
        "method": METHOD_VERSION,
        "n_cases": len(cases), "n_students": len(students), "n_controls": len(controls),
        "n_pairs": len(pairs), "n_hp_pairs": len(hp), "n_hd_pairs": len(hd),
        "n_lineages": int(pairs["lineage"].nunique()),
        "pair_auc": round(float(roc_auc_score(pairs["hp"], pairs["score"])), 6),
        "cllr": round(c, 6), "cllr_min": round(c_min, 6),
        "student_attribution_accuracy": round(float(students["correct"].mean()), 6) if len(students) else None,
        "students_attributed_correctly": int(students["correct"].sum()),
        "false_attributions_controls": int((controls["attributed"] != "none").sum()),
        "false_attribution_rate_controls": round(float((controls["attributed"] != "none").mean()), 6)
        if len(controls) else None,
        # Set-valued reading: the documented teacher is among the candidates whose LR supports Hp (named or
        # not), and a control has no supported candidate at all.
        "students_documented_teacher_supported": int(students["documented_supported"].sum()),
        "controls_with_a_supported_teacher": int((~controls["documented_supported"]).sum()),
        "rate_misleading_hp": round(float((hp["log10_lr"] < 0).mean()), 6),
        "rate_misleading_hd": round(float((hd["log10_lr"] > 0).mean()), 6),
        "per_teacher": per_teacher,
        "tippett": {"hp": [round(float(v), 6) for v in sorted(hp["log10_lr"])],
                    "hd": [round(float(v), 6) for v in sorted(hd["log10_lr"])]},
    }


@dataclass
class ValidationReport:
    summary: dict[str, Any]
    pairs: pd.DataFrame
    cases: pd.DataFrame
    calibration: Calibration

    def summary_lines(self) -> list[str]:
        s = self.summary
        return [
            f"validation ({s['method']}): {s['n_cases']} cases ({s['n_students']} students, {s['n_controls']} "
            f"controls), {s['n_pairs']} pairs, {s['n_lineages']} lineages, leave-one-lineage-out",
            f"pair AUC {s['pair_auc']:.3f}; Cllr {s['cllr']:.3f} (Cllr_min {s['cllr_min']:.3f})",
            f"students attributed to their documented teacher: {s['students_attributed_correctly']} of "
            f"{s['n_students']}",
            f"controls given a teacher (false attributions): {s['false_attributions_controls']} of "
            f"{s['n_controls']}",
            f"students whose documented teacher is among the supported candidates (named or not): "
            f"{s['students_documented_teacher_supported']} of {s['n_students']}; controls with any supported "
            f"candidate: {s['controls_with_a_supported_teacher']} of {s['n_controls']}",
            f"misleading evidence: {s['rate_misleading_hp']:.1%} of Hp pairs, {s['rate_misleading_hd']:.1%} "
            f"of Hd pairs",
            f"calibration: log10 LR = {self.calibration.intercept:+.3f} {self.calibration.slope:+.3f} x score, "
            f"bounded to [{self.calibration.lower:+.2f}, {self.calibration.upper:+.2f}]",
        ]


def validate(labels_csv: Path, params: Parameters | None = None, model: str | None = None) -> ValidationReport:
    params = params or Parameters()
    bench = load_benchmark(Path(labels_csv), params.max_response_chars)
    embed_benchmark(bench, model, params.opening_words)
    pairs = leave_one_lineage_out(pair_table(bench, params), params.inconclusive_band)
    cases = case_outcomes(pairs)
    summary = summarise(pairs, cases)
    summary["data_sha256"] = bench.data_sha256
    summary["n_prompts"] = len(bench.prompt_keys)
    cal = Calibration.fit(pairs["score"].to_numpy(), pairs["hp"].to_numpy(), data_sha256=bench.data_sha256,
                          description=f"{METHOD_VERSION}; fitted on every labelled pair of {labels_csv.name}")
    cal.metrics = {"summary": {k: v for k, v in summary.items() if k != "per_teacher"}}
    return ValidationReport(summary, pairs, cases, cal)


#: The files :func:`write_report` writes into the validation folder.
VALIDATION_FILES = ("pairs.csv", "cases.csv", "leanings.csv", "summary.json", "summary.txt", "tippett.png")


def write_report(report: ValidationReport, out_dir: Path) -> None:
    from forensics import figures

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "pairs.csv", report.pairs.round(6).to_csv(index=False))
    atomic_write_text(out_dir / "cases.csv", report.cases.to_csv(index=False))
    atomic_write_text(out_dir / "leanings.csv", line_leanings(report.pairs).to_csv(index=False))
    atomic_write_json(out_dir / "summary.json", report.summary)
    atomic_write_text(out_dir / "summary.txt", "\n".join(report.summary_lines()) + "\n")
    tip = report.summary["tippett"]
    figures.tippett_plot(tip["hp"], tip["hd"]).savefig(out_dir / "tippett.png", dpi=120,
                                                       metadata={"Software": None})


def read_validation(out_dir: Path) -> dict[str, Any]:
    """What :func:`write_report` wrote, read back for the validation notebook (no re-computation)."""
    out_dir = Path(out_dir)
    missing = [n for n in VALIDATION_FILES if not (out_dir / n).is_file()]
    if missing:
        raise InputError(f"the validation folder lacks {', '.join(missing)}", path=out_dir,
                         fix="run `forensics validate LABELS.csv --out DIR` (or `make calibrate`) first")
    return {"summary": json.loads((out_dir / "summary.json").read_text(encoding="utf-8")),
            "summary_text": (out_dir / "summary.txt").read_text(encoding="utf-8"),
            "pairs": pd.read_csv(out_dir / "pairs.csv"), "cases": pd.read_csv(out_dir / "cases.csv"),
            "leanings": pd.read_csv(out_dir / "leanings.csv"), "tippett": out_dir / "tippett.png"}


def run_validation(labels_csv: Path, out_dir: Path) -> ValidationReport:
    report = validate(labels_csv)
    write_report(report, out_dir)
    return report


def refit_calibration(labels_csv: Path, out: Path | None = None, out_dir: Path | None = None) -> Path:
    """Validate, then fit on every pair and write the calibration file (with the validation summary)."""
    report = validate(labels_csv)
    if out_dir is not None:
        write_report(report, out_dir)
    target = out or DEFAULT_CALIBRATION
    report.calibration.save(target)
    print(json.dumps({"sha256": sha256_file(target)}), file=sys.stderr)
    return target
