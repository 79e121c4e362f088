"""The chain-of-custody appendix, from the manifest (falling back to findings where it is silent)."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

from forensics.escaping import as_text
from forensics.report.constants import HTML_NAME, PDF_NAME
from forensics.report.reading import mapping_of, records_of


def _seconds(step: Mapping[str, Any]) -> str:
    try:
        start = _dt.datetime.fromisoformat(str(step.get("started")))
        end = _dt.datetime.fromisoformat(str(step.get("finished")))
        return f"{(end - start).total_seconds():.0f}"
    except (TypeError, ValueError):
        return "—"


def _flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested mapping as sorted (dotted key, text) rows: model files and their hashes, one per row."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        # a list of records (the model's files): one row each, named by its path where it has one
        rows_of_list: list[tuple[str, str]] = []
        for index, item in enumerate(value):
            name = as_text(item.get("path")) or str(index)
            rows_of_list += _flat({k: v for k, v in item.items() if k != "path"}, f"{prefix}{name}/")
        return rows_of_list
    if not isinstance(value, Mapping):
        return [(prefix.rstrip("/") or "value", as_text(value))]
    rows: list[tuple[str, str]] = []
    for key, item in sorted(value.items()):
        nested = isinstance(item, Mapping)
        records = isinstance(item, list) and bool(item) and all(isinstance(v, Mapping) for v in item)
        rows += _flat(item, f"{prefix}{key}/") if nested or records else [(f"{prefix}{key}", as_text(item))]
    return rows


def _json(value: Any) -> str:
    """JSON text of a parameter, so null, [] and 0 stay distinguishable in the appendix."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


#: What identifies the calibration that turned scores into likelihood ratios, and the labelled data it was
#: fitted on (the report's numbers depend on both; ``forensics calibrate`` rebuilds the file from the data).
CALIBRATION_ROWS = (("calibration_file", "calibration file"), ("calibration_sha256", "calibration sha256"),
                    ("data_sha256", "sha256 of the labelled data it was fitted on"))


def custody_view(manifest: Mapping[str, Any], findings: Mapping[str, Any]) -> dict[str, Any]:
    """The chain-of-custody appendix, from the manifest (falling back to findings where it is silent)."""
    environment = mapping_of(manifest.get("environment") or findings.get("environment"))
    parameters = mapping_of(manifest.get("parameters") or findings.get("parameters"))
    validation = mapping_of(findings.get("validation"))
    return {
        "case_file": mapping_of(manifest.get("case_file")),
        "inputs": records_of(manifest.get("inputs") or findings.get("inputs")),
        "collections": collection_rows(records_of(manifest.get("inputs") or findings.get("inputs"))),
        "model": _flat(manifest.get("model") or findings.get("model") or {}),
        "parameters": sorted((str(k), v if isinstance(v, str) else _json(v)) for k, v in parameters.items()),
        "parameters_sha256": manifest.get("parameters_sha256") or findings.get("parameters_sha256"),
        "environment": sorted((k, as_text(v)) for k, v in environment.items() if k != "packages"),
        "packages": sorted(mapping_of(environment.get("packages")).items()),
        "calibration": [(label, as_text(validation.get(key))) for key, label in CALIBRATION_ROWS
                        if validation.get(key)],
        "steps": [dict(s, seconds=_seconds(s)) for s in records_of(manifest.get("steps"))],
        # The report's own files are recorded after rendering: any entry for them here is a stale one.
        "artifacts": sorted((str(rel), mapping_of(a)) for rel, a in mapping_of(manifest.get("artifacts")).items()
                            if rel not in (HTML_NAME, PDF_NAME)),
    }


def collection_rows(inputs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per source collected with ``forensics collect``: who answered what, when, with which settings."""
    rows = []
    for entry in inputs:
        c = mapping_of(entry.get("collection"))
        if not c:
            continue
        rows.append({"name": entry.get("name"), "role": as_text(entry.get("role")),
                     "endpoint": "; ".join(as_text(v) for v in c.get("endpoints") or []),
                     "model": "; ".join(as_text(v) for v in c.get("models") or []),
                     "served": "; ".join(as_text(v) for v in c.get("served_models") or []),
                     "parameters": "; ".join(_json(p) for p in c.get("parameters") or []),
                     "span": f"{as_text(c.get('first'))} to {as_text(c.get('last'))}",
                     "counts": f"{as_text(c.get('answered'))} answered, {as_text(c.get('truncated'))} cut at "
                               f"max_tokens, {as_text(c.get('failed'))} failed"})
    return rows


def timestamp(findings: Mapping[str, Any], manifest: Mapping[str, Any]) -> _dt.datetime:
    """The report's fixed date: when the findings were generated, so reruns give the same PDF metadata."""
    for value in (findings.get("generated"), manifest.get("created")):
        try:
            stamp = _dt.datetime.fromisoformat(str(value))
        except ValueError:
            continue
        return stamp.astimezone(_dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=_dt.UTC)
    return _dt.datetime(2000, 1, 1, tzinfo=_dt.UTC)
