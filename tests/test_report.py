"""The report: content generated from findings, inert hostile text, offline PDF/A with attachments.

WeasyPrint takes seconds per document, so the sample and the hostile report are each built once per module.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from forensics import report
from forensics.custody import Manifest, RunFolder, sha256_file

SAMPLE = Path(__file__).parent / "data" / "findings_sample.json"

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
MARKDOWN = "[click](javascript:alert(3)) ![pic](http://evil.example/p.png) https://evil.example/x"
LATEX = r"$\input{/etc/passwd}$ \href{http://evil.example}{x}"
RTL = "abc\u202eevil\u202c def"
BREAKOUT = ('</td></tr></table><style>@import url(http://evil.example/s.css);</style>'
            '<link rel=stylesheet href="http://evil.example/l.css"><iframe src="http://evil.example"></iframe>'
            '<svg onload=alert(4)><a href="javascript:alert(5)">x</a>{{ 7*7 }}')
HUGE = "A" * 1_000_000


def tiny_png() -> bytes:
    """A valid 2x2 grey PNG, so figure embedding is tested without importing matplotlib."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80\x80" for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_run(root: Path, findings: dict[str, Any]) -> Path:
    """A run folder as the pipeline leaves it before step 07: manifest, figures, findings.json."""
    run = RunFolder(root)
    manifest = run.manifest()
    manifest.set("case_file", {"path": "/cases/demo/case.yaml", "sha256": "e" * 64})
    inputs = [dict(i, abs_path=f"/cases/demo/{i['path']}", bytes=1234) for i in findings["inputs"]]
    manifest.set("inputs", inputs)
    manifest.set("parameters", findings["parameters"])
    manifest.set("parameters_sha256", findings["parameters_sha256"])
    manifest.set("model", {**findings["model"], "files": {"model.safetensors": "f" * 64}})
    manifest.set("environment", findings["environment"])
    manifest.record_step("00_case", "2026-11-25T14:50:00+00:00", "2026-11-25T14:50:30+00:00")
    manifest.save()
    for stem in ("lr_scale", "line_embedding", "line_stylometry", "line_markers", "tippett"):
        path = run.path(f"figures/{stem}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tiny_png())
        Manifest.load(root).record_artifact(path, "06_evidence")
    run.path("figures/umap.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    run.write_json("findings.json", findings, step="06_evidence")
    return root


def hostile(findings: dict[str, Any]) -> dict[str, Any]:
    """The sample with payloads in names, title, exhibits, leaks, limitations and warnings."""
    f = copy.deepcopy(findings)
    old_teacher, old_ref = f["teachers"][0]["name"], f["panel"][0]["name"]
    new_teacher, new_ref = SCRIPT + "teacher", IMG + "ref"
    f["teachers"][0]["name"] = f["conclusion"]["attributed_teacher"] = new_teacher
    f["panel"][0]["name"] = new_ref
    for teacher in f["teachers"]:
        for entry in teacher["evidence"].values():
            values = entry.get("panel_values", {})
            values[new_ref] = values.pop(old_ref)
    assert old_teacher != new_teacher
    f["title"] = f"Was {SCRIPT} trained? {RTL}"
    f["case"] = "case-" + IMG
    exhibit = f["exhibits"][0]
    exhibit["suspect"] = " ".join([SCRIPT, IMG, MARKDOWN, LATEX, RTL, BREAKOUT, "Tom & Jerry"]) + "\n" + HUGE
    exhibit["teacher"] = BREAKOUT + " I hope this helps " + SCRIPT
    exhibit["prompt"] = MARKDOWN + " " + SCRIPT
    exhibit["phrases"] += [{"phrase": "<script>", "panel_base_rate": 0.0},
                           {"phrase": "amp", "panel_base_rate": 0.0}]
    leak = f["identity_leaks"][0]
    leak.update(response=f"I am {SCRIPT} {IMG} {RTL}", prompt=BREAKOUT, match=SCRIPT)
    f["limitations"].append(BREAKOUT + " " + "B" * 100_000)
    f["data"]["warnings"][0]["message"] = MARKDOWN
    f["teachers"][1]["verbal"] = IMG
    f["inputs"][0]["collection"] = {  # as forensics collect records it, from a hostile server and user
        "endpoints": [BREAKOUT], "models": [SCRIPT + "model"], "served_models": [IMG],
        "parameters": [{"system": SCRIPT, "temperature": 0.0}], "first": RTL, "last": "2026-11-25",
        "answered": 7, "truncated": 1, "failed": 2}
    return f


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _build(root: Path, findings: dict[str, Any]) -> SimpleNamespace:
    make_run(root, findings)
    handler = _Collect()
    loggers = [logging.getLogger("weasyprint"), logging.getLogger("forensics.report")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        built = report.build(root)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    return SimpleNamespace(root=root, report=built, html=built.html.read_text(encoding="utf-8"),
                           pdf=built.pdf.read_bytes(), logs=[r.getMessage() for r in handler.records],
                           findings=findings)


@pytest.fixture(scope="module")
def sample_findings() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, sample_findings: dict[str, Any]) -> SimpleNamespace:
    return _build(tmp_path_factory.mktemp("sample"), sample_findings)


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory, sample_findings: dict[str, Any]) -> SimpleNamespace:
    return _build(tmp_path_factory.mktemp("hostile"), hostile(sample_findings))


# -- helpers to read what was produced -------------------------------------------------------------

class _Elements(HTMLParser):
    """Every start tag with its attributes, plus text (html.parser is what a browser-agnostic check needs)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def pdf_streams(pdf: bytes) -> list[bytes]:
    """Every stream of the PDF, inflated where it is compressed (object streams, XMP, attachments)."""
    streams = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            streams.append(zlib.decompress(match.group(1)))
        except zlib.error:
            streams.append(match.group(1))
    return streams


def pdf_text(path: Path, first: int | None = None, last: int | None = None) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    pages = (["-f", str(first)] if first else []) + (["-l", str(last)] if last else [])
    done = subprocess.run(["pdftotext", *pages, str(path), "-"], capture_output=True, check=True, timeout=60)
    return done.stdout.decode("utf-8")


def words(text: str) -> str:
    return " ".join(text.split())


# -- the sample report -----------------------------------------------------------------------------

def test_build_writes_html_and_pdf_and_records_them(sample: SimpleNamespace) -> None:
    artifacts = Manifest.load(sample.root).data["artifacts"]
    for path in (sample.report.html, sample.report.pdf):
        entry = artifacts[path.name]
        assert entry["step"] == report.STEP
        assert entry["sha256"] == sha256_file(path)
    assert sample.pdf.startswith(b"%PDF-1.7")
    assert not list(sample.root.glob(".report.*.tmp"))  # atomic writes left no temporary file
    assert sample.report.pages >= 8
    assert sample.report.refused == []


def test_pdf_is_pdfa3b_with_findings_and_manifest_attached(sample: SimpleNamespace) -> None:
    streams = pdf_streams(sample.pdf)
    assert (sample.root / "findings.json").read_bytes() in streams
    attached = [json.loads(s) for s in streams if s.startswith(b"{") and b'"case_file"' in s]
    assert attached and attached[0]["inputs"] == Manifest.load(sample.root).data["inputs"]
    everything = b"\n".join(streams) + sample.pdf
    assert b'pdfaid:part="3"' in everything and b'pdfaid:conformance="B"' in everything
    assert b"/AFRelationship /Data" in everything
    assert b"findings.json" in everything and b"manifest.json" in everything
    assert b"2026-11-25T15:00:00" in everything  # dates come from the findings, not the clock


def test_first_page_answers_the_question(sample: SimpleNamespace) -> None:
    first = words(pdf_text(sample.report.pdf, 1, 1))
    assert "The evidence supports that acme-chat-7b was trained on outputs of teacher-alpha." in first
    assert "about 500 times more probable under Hp than under Hd" in first
    assert "log10 LR = +2.70" in first
    assert "Inconclusive for teacher-beta" in first
    assert "about 2.6 times more probable under Hd than under Hp" in first
    assert "prosecutor's fallacy" in first
    assert "does not show that the developer of acme-chat-7b acted knowingly" in first
    assert "page 1 of" in first and "demo-acme-2026" in first  # running header and page numbers


def test_every_section_is_generated_from_findings_and_manifest(sample: SimpleNamespace) -> None:
    f, text = sample.findings, words(" ".join(parse(sample.html).text))
    for section in ("answer", "propositions", "findings", "exhibits", "method", "limitations", "custody"):
        assert f'id="{section}"' in sample.html
    for panel in f["panel"]:
        assert words(panel["why"]) in text and panel["base_model"] in text
    assert f["propositions"]["Hp"] in text and f["propositions"]["Hd"] in text
    assert ("Toward teacher-alpha, the suspect measures 0.842, higher than all 4 panel models "
            "(panel 0.777 to 0.809); z = +3.41") in text
    assert "Cllr = 0.284" in text and "Cllr_min = 0.197" in text
    assert "15 cases (60 suspect/teacher pairs)" in text
    for item in f["limitations"] + [w["message"] for w in f["data"]["warnings"]]:
        assert words(item) in text
    for item in f["inputs"]:
        assert item["sha256"] in sample.html
    assert f["parameters_sha256"] in sample.html and f["model"]["fingerprint"] in sample.html
    assert Manifest.load(sample.root).artifact_sha256("findings.json") in sample.html
    assert "00_case" in text and "developed by Alpha Labs" in text
    assert "within the inconclusive band, so reported as inconclusive" in text


def test_figures_are_embedded_and_missing_ones_noted(sample: SimpleNamespace) -> None:
    sources = [attrs.get("src") or "" for tag, attrs in parse(sample.html).tags if tag == "img"]
    assert len(sources) == 6  # five PNG slots and the leftover SVG
    assert all(src.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,")) for src in sources)
    assert "figures/line_clusters.png was not produced in this run" in sample.html


def test_exhibit_phrases_are_highlighted_with_base_rates(sample: SimpleNamespace) -> None:
    assert "<mark>Here are some tips</mark> to help you stay" in sample.html
    assert "<mark>I hope this helps</mark>!" in sample.html
    assert "0.6%" in sample.html


def test_html_is_deterministic(sample: SimpleNamespace) -> None:
    manifest = Manifest.load(sample.root).data
    first = report.render_html(sample.findings, manifest, sample.root)
    assert first == report.render_html(sample.findings, manifest, sample.root)


@pytest.mark.parametrize(("outcome", "said"), [
    ("no teacher supported", "NO TEACHER SUPPORTED: the evidence does not support that acme-chat-7b"),
    ("inconclusive", "INCONCLUSIVE: the evidence is not strong enough"),
])
def test_negative_outcomes_are_said_plainly(sample_findings: dict[str, Any], tmp_path: Path, outcome: str,
                                            said: str) -> None:
    findings = copy.deepcopy(sample_findings)
    findings["conclusion"].update(outcome=outcome, attributed_teacher=None)
    findings["teachers"][0].update(supports="Hd" if outcome != "inconclusive" else "inconclusive")
    html = report.render_html(findings, {}, tmp_path)
    assert said in words(" ".join(parse(html).text))
    assert "does not prove independence" in html


def test_inconclusive_between_supported_candidates_names_them(sample_findings: dict[str, Any],
                                                              tmp_path: Path) -> None:
    """Two candidates both supported, neither singled out: the headline says between which it could not decide."""
    findings = copy.deepcopy(sample_findings)
    findings["conclusion"].update(outcome="inconclusive", attributed_teacher=None)
    first = dict(findings["teachers"][0], supports="Hp", beats_other_candidates=False)
    second = dict(first, name="other-teacher")
    findings["teachers"] = [first, second]
    text = words(" ".join(parse(report.render_html(findings, {}, tmp_path)).text))
    assert (f"INCONCLUSIVE: the evidence supports that acme-chat-7b was trained on outputs of {first['name']} "
            "or other-teacher (or both), but does not single out one") in text
    assert "not strong enough to support either proposition" not in text


def test_run_step_builds_from_the_run_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built = report.Report(html=tmp_path / "r.html", pdf=tmp_path / "r.pdf", pages=3, refused=[])
    monkeypatch.setattr(report, "build", lambda root: built if root == tmp_path else None)
    assert report.run_step(None, SimpleNamespace(root=tmp_path))["pages"] == 3


# -- small pieces ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("log10_lr", "phrase"), [
    (2.703, "about 500 times more probable under Hp than under Hd"),
    (-0.412, "about 2.6 times more probable under Hd than under Hp"),
    (5.3, "about 200,000 times more probable under Hp than under Hd"),
    (0.01, "about equally probable under Hp and under Hd"),
    (None, "no likelihood ratio was recorded"),
])
def test_lr_phrase(log10_lr: float | None, phrase: str) -> None:
    assert report.lr_phrase(log10_lr) == phrase


def test_highlight_escapes_each_segment_before_marking() -> None:
    phrases = ["amp", "<b>", "i hope THIS helps"]
    html = str(report.highlight("Tom & Jerry <b>hi</b> I hope this helps", phrases))
    assert "<b>" not in html.replace("<mark>", "")
    assert "<mark>&lt;b&gt;</mark>hi&lt;/b&gt;" in html
    assert "&amp;" in html and "<mark>amp</mark>" not in html  # never matched inside an entity
    assert "<mark>I hope this helps</mark>" in html


def test_control_characters_are_shown_not_obeyed() -> None:
    html = str(report.render_text("a\u202eb\x00c\ud800d\ne"))
    assert "[U+202E]" in html and "[U+0000]" in html and "[U+D800]" in html
    assert "\u202e" not in html and "\x00" not in html and "\ne" in html
    html.encode("utf-8")  # a lone surrogate no longer breaks writing the file


def test_long_text_is_truncated_with_a_visible_note() -> None:
    html = str(report.render_text("x" * 5000, 1000))
    assert "[… truncated, 4,000 characters]" in html
    assert html.count("x") < 1100


def test_offline_fetcher_refuses_network_and_files_outside_the_run(tmp_path: Path) -> None:
    fetcher = report.OfflineFetcher(tmp_path)
    fetcher.check("data:image/png;base64,AAAA")
    fetcher.check((tmp_path / "figures" / "a.png").as_uri())
    for url in ("http://evil.example/x.png", "https://evil.example/", "ftp://evil.example/",
                (tmp_path.parent / "secret.txt").as_uri()):
        with pytest.raises(ValueError):
            fetcher.check(url)
    assert len(fetcher.refused) == 4


# -- hostile text ----------------------------------------------------------------------------------

def test_hostile_html_has_no_active_content(attack: SimpleNamespace) -> None:
    parsed = parse(attack.html)
    names = [tag for tag, _ in parsed.tags]
    assert not {"script", "iframe", "object", "embed", "link", "form", "base", "svg", "math"} & set(names)
    assert names.count("style") == 2 and names.index("style") < names.index("body")
    for tag, attrs in parsed.tags:
        assert not [a for a in attrs if a.lower().startswith("on")], (tag, attrs)
        for name in ("href", "src"):
            value = (attrs.get(name) or "").strip().lower()
            if tag == "a" and name == "href":
                assert value.startswith("#"), value  # only the table of contents links, inside the page
            elif value:
                assert value.startswith("data:image/"), value
    metas = [attrs for tag, attrs in parsed.tags if tag == "meta" and "http-equiv" in attrs]
    http_equiv = [(attrs.get("http-equiv") or "").lower() for attrs in metas]
    assert http_equiv == ["content-security-policy"]


def test_hostile_text_is_shown_as_text(attack: SimpleNamespace) -> None:
    text = "".join(parse(attack.html).text)
    for payload in (SCRIPT + "teacher", IMG, "{{ 7*7 }}", r"$\input{/etc/passwd}$", "javascript:alert(3)"):
        assert payload in text.replace("\u200b", "")
    assert "abc[U+202E]evil[U+202C] def" in text
    assert "<mark>&lt;script&gt;</mark>" in attack.html
    assert "&<mark>amp</mark>;" not in attack.html
    assert re.search(r"\[… truncated, [\d,]+ characters\]", text)
    assert len(attack.html) < 600_000  # the megabyte string did not reach the page


def test_collection_settings_are_listed_and_escaped(sample: SimpleNamespace, attack: SimpleNamespace) -> None:
    """Sources collected with forensics collect get a row in the custody appendix; others none."""
    assert "<h3>Collection</h3>" not in sample.html
    table = attack.html[attack.html.index("<h3>Collection</h3>"):]
    table = table[:table.index("</table>")]
    text = "".join(parse(table).text).replace("\u200b", "")
    assert SCRIPT + "model" in text and "7 answered, 1 cut at max_tokens, 2 failed" in text
    assert "abc[U+202E]evil[U+202C] def to 2026-11-25" in text
    assert "<script" not in table and "<iframe" not in table


def test_hostile_pdf_fetched_nothing_and_shows_payload_as_text(attack: SimpleNamespace) -> None:
    assert attack.report.refused == []
    assert not [m for m in attack.logs if "fetch" in m.lower() or "http" in m.lower() or "url" in m.lower()]
    streams = pdf_streams(attack.pdf)
    assert (attack.root / "findings.json").read_bytes() in streams  # the full evidence travels with the PDF
    if shutil.which("pdftotext") is None:
        return
    squeezed = "".join(pdf_text(attack.report.pdf).split())
    for payload in (SCRIPT + "teacher", IMG, "javascript:alert(5)", "[U+202E]"):
        assert "".join(payload.split()) in squeezed


@pytest.mark.parametrize("findings", [
    {},
    {"teachers": "x", "panel": [1, None], "exhibits": {}, "conclusion": None, "data": [], "validation": 3,
     "limitations": "abc", "parameters": [], "environment": "e"},
    {"teachers": [{"name": 5, "log10_lr": "high", "lr_bounds": [1],
                   "evidence": {"embedding": [], "x": {"suspect_value": True, "panel_values": {"a": "b"},
                                                       "ci95": "no", "z": math.nan}}}],
     "exhibits": [{"phrases": [{"phrase": None}, "x"], "suspect": None}], "identity_leaks": [{"match": ""}],
     "generated": "yesterday", "candidates": [{"name": 10**300}]},
])
def test_sparse_or_malformed_findings_still_render(findings: dict[str, Any], tmp_path: Path) -> None:
    """A broken findings file must give a report that says what is missing, not a traceback."""
    manifest = {"steps": [{"started": "x"}], "artifacts": {"a": "b"}, "case_file": "str", "inputs": "no"}
    html = report.render_html(findings, manifest, tmp_path)
    assert "was not produced in this run" in html
