"""The typed contract of ``findings.json``: one home for its shape (docs/FINDINGS.md, docs/findings.schema.json).

Step 06 builds its findings through these classes and writes their JSON; step 06 and the validation
score into the same :class:`LineScores`; notebook 06 reads the findings back through
:meth:`Findings.from_json` (after the run folder checked their bytes), ``forensics schema FILE`` through
:meth:`Findings.read`, and the report and ``forensics verify`` state any departure from the contract
(:func:`contract_problem`). Every model forbids unknown keys, so a writer that drifts from the contract
fails in the tests instead of writing a file its readers silently misread. The JSON Schema in
``docs/findings.schema.json`` is generated from these classes (``forensics schema``) and every real run's
findings are validated against it in the tests.

Numbers are rounded to 6 decimals by the writer (:func:`forensics.scoring.rounded`) before they enter
these objects; the objects do not round, so a value read back is the value written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from forensics.calibration import VERBAL_PHRASES
from forensics.errors import InputError

#: Version of the findings contract; bumped whenever a reader would have to change (3: the conclusion always
#: carries both comparison maps, co-clustering has z_ci95, and the contract is typed and enforced; 5: ``verbal``
#: is the ENFSI phrase alone, as CONTRACTS.md shows it, no longer followed by "for Hp" / "for Hd"; 6: a panel
#: member carries the ``family`` the case file names for it; 7: every teacher and family carries its
#: ``rival_lead``, ``rival`` and ``rival_discount``, which its LR weighs since panel-relative-fused-v11).
SCHEMA = 7
#: How the limitations that bear on the answer itself begin (an alternative explanation of the resemblance,
#: a calibration that is no independent test of this case, answers that are another source's word for word):
#: the report repeats them on its cover, beside the answer, instead of only in its limitations section.
#: Step 06 writes them; one home for both.
CAUTION_OPENINGS = ("The suspect's answers are much ", "The suspect's answers match a labelled model ",
                    "The suspect's answers repeat those of ")
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "findings.schema.json"

Interval = Annotated[list[float | None], Field(min_length=2, max_length=2,
                                               description="95% percentile bootstrap interval [low, high]")]
Supports = Literal["Hp", "Hd", "inconclusive"]
#: The ENFSI phrases (:data:`forensics.calibration.VERBAL_SCALE`); the direction is the sign of ``log10_lr``.
Verbal = Literal[VERBAL_PHRASES]  # type: ignore[valid-type]
Outcome = Literal["attributed", "family attributed", "inconclusive", "no teacher supported"]


class Record(BaseModel):
    """A part of the findings: unknown keys are refused, keys the writer left out stay out on output."""

    # strict: "40" is not 40 and "yes" is not true (ints still stand for floats), as in the JSON Schema
    model_config = ConfigDict(extra="forbid", strict=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON object (only the fields that were given, so a read-back file is written unchanged)."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """The typed object; :class:`pydantic.ValidationError` names every field that breaks the contract."""
        return cls.model_validate(data)


# ----------------------------------------------------------------------------------------- lines of evidence

class LineEvidence(Record):
    """One line of evidence for one teacher: the suspect's value against each reference's (panel-relative)."""

    statistic: str = Field(description="what was measured, in words")
    suspect_value: float | None
    panel_values: dict[str, float | None] = Field(description="the same statistic for each reference model")
    z: float | None = Field(description="(suspect - panel mean) / panel standard deviation")
    ci95: Interval
    z_ci95: Interval | None = None
    n_prompts: int


class FullAnswers(Record):
    """The embedding statistic on whole answers (reported, not fused)."""

    statistic: str
    suspect_value: float | None
    panel_values: dict[str, float | None]
    z: float | None
    naive_z: float | None
    n_prompts: int


class EmbeddingEvidence(LineEvidence):
    naive_z: float | None = Field(description="z without removing the teacher-independent prompt effect")
    raw_similarity: dict[str, float | None] = Field(
        description="mean cosine similarity to the teacher per source (answer openings, each prompt's panel "
                    "consensus removed)")
    full_answers: FullAnswers | None = None


class StyloFamily(Record):
    """One stylometric family (formatting, function words, character n-grams...) for one teacher."""

    suspect_value: float | None
    panel_values: dict[str, float | None]
    z: float | None
    ci95: Interval
    z_ci95: Interval
    fused: bool = Field(description="whether this family makes the stylometric line")


class StylometryEvidence(LineEvidence):
    families: dict[str, StyloFamily]


class MarkerRow(Record):
    phrase: str
    z: float | None
    teacher_rate: float | None
    suspect_rate: float | None
    panel_rate: float | None


class MarkerEvidence(LineEvidence):
    teacher_value: float | None
    n_markers: int
    top_markers: list[MarkerRow]


class NoiseIncluded(Record):
    suspect_value: float | None
    panel_values: dict[str, float | None]
    z: float | None
    p_value: float | None


class ClusterEvidence(Record):
    """Co-clustering of the suspect's and the teacher's answers (reported, not fused)."""

    statistic: str
    description: str
    suspect_value: float | None
    panel_values: dict[str, float | None]
    z: float | None
    ci95: Interval
    z_ci95: Interval | None = None
    p_value: float | None = Field(description="paired permutation p-value")
    permutations: int
    n_prompts: int
    noise_share: float | None
    noise_included: NoiseIncluded | None = None


class Evidence(Record):
    embedding: EmbeddingEvidence
    wording: LineEvidence = Field(description="shared wording of the answer openings (forensics.wording)")
    stylometry: StylometryEvidence
    markers: MarkerEvidence
    clusters: ClusterEvidence | None = None


# ----------------------------------------------------------------------------------------- verdicts

class LRFields(Record):
    """A calibrated likelihood ratio with its bounds, its words and the proposition it supports."""

    log10_lr: float
    lr_bounds: Annotated[list[float], Field(min_length=2, max_length=2)]
    at_bound: bool = Field(description="the LR sits at an empirical bound of the calibration (ELUB)")
    verbal: Verbal = Field(description="ENFSI verbal equivalent of the LR, the phrase alone: it supports Hp when "
                                       "log10_lr > 0, Hd when log10_lr < 0")
    supports: Supports
    rival_lead: float | None = Field(
        description="how far the best-scoring candidate outside its family scores above it (0 when none does; "
                    "null without a score): the calibration's rival discount weighs it")
    rival: str | None = Field(description="that candidate (a family's: that family), or null when none")
    rival_discount: float | None = Field(
        description="log10 LR taken off for the rival lead: the bounded LR without the discount less the "
                    "bounded LR with it (the calibration's rival slope times the lead, unless a bound intervenes)")


class TeacherResult(LRFields):
    """One candidate teacher: fused score, LR and every line's evidence."""

    name: str
    family: str
    score: float | None = Field(description="fused score: the mean of the fused lines' z")
    score_ci95: Interval
    beats_other_candidates: bool
    beats_share: float = Field(description="share of bootstrap replicates in which it out-scores every other")
    evidence: Evidence


class FamilyResult(LRFields):
    """One family of candidates (snapshots of one model line); a teacher without a family is its own."""

    name: str
    members: list[str]
    best_member: str | None
    score: float | None


class Conclusion(Record):
    """The decision (docs/FINDINGS.md "conclusion") and its one plain-language sentence."""

    outcome: Outcome
    attributed_teacher: str | None
    attributed_family: str | None
    candidates_supported: list[str]
    families_supported: list[str]
    family_comparisons: dict[str, float] = Field(
        description="log10 LR of 'trained on the attributed family rather than F', per other family F")
    sibling_comparisons: dict[str, float] = Field(
        description="log10 LR of 'trained on the attributed teacher rather than sibling S'")
    statement: str


# ----------------------------------------------------------------------------------------- findings

class Candidate(Record):
    name: str
    why: str | None


class PanelMember(Record):
    name: str
    role: Literal["reference"]
    why: str | None
    base_model: str | None
    family: str | None = Field(None, description="the model line the case file names for this reference; "
                               "references sharing one count once towards the panel's model lines (none: a "
                               "line of its own)")


class Warning_(Record):
    model_config = ConfigDict(extra="allow", strict=True, title="Warning")

    code: str
    count: int
    message: str


class Coverage(Record):
    """How the sources' prompts were joined (step 00); per-source counts are kept as written."""

    model_config = ConfigDict(extra="allow", strict=True)

    prompts_total: int
    prompts_shared: int
    prompts_analysable: int
    excluded: list[dict[str, Any]]
    sources: dict[str, dict[str, Any]]


class Data(Record):
    n_prompts_analysed: int
    coverage: Coverage
    warnings: list[Warning_]


class Phrase(Record):
    phrase: str
    panel_base_rate: float | None


class Exhibit(Record):
    """One prompt's answers side by side: teacher, suspect and the reference closest to the teacher."""

    prompt_key: str
    prompt: str
    teacher_name: str
    teacher: str
    suspect: str
    reference_name: str
    reference: str
    similarity_suspect_teacher: float | None
    similarity_reference_teacher: float | None
    phrases: list[Phrase]


class Input(Record):
    name: str
    role: str
    path: str | None
    sha256: str | None
    collection: dict[str, Any] | None = None


class EmbeddingModel(Record):
    name: str | None
    fingerprint: str | None


class Validation(Record):
    """The shipped calibration's record and its validated performance (docs/FINDINGS.md "validation")."""

    model_config = ConfigDict(extra="allow", strict=True)

    calibration_file: str
    calibration_sha256: str
    cross_source: dict[str, Any] | None = None


class Findings(Record):
    """``findings.json``: everything the report states, recomputed from the case's artifacts."""

    model_config = ConfigDict(extra="forbid", strict=True, title="findings.json")

    schema_: int = Field(alias="schema", description="version of this contract")
    case: str
    title: str
    suspect: str
    propositions: dict[Literal["Hp", "Hd"], str]
    candidates: list[Candidate]
    panel: list[PanelMember]
    data: Data
    fused_lines: list[str]
    teachers: list[TeacherResult]
    families: list[FamilyResult]
    conclusion: Conclusion
    exhibits: list[Exhibit]
    identity_leaks: list[dict[str, Any]]
    identity_counts: dict[str, dict[str, Any]]
    canaries: dict[str, Any] | None
    limitations: list[str]
    validation: Validation
    inputs: list[Input]
    model: EmbeddingModel
    parameters: dict[str, Any]
    parameters_sha256: str | None
    environment: dict[str, Any]
    generated: str

    def teacher(self, name: str) -> TeacherResult:
        """The named teacher's result (KeyError when the case has no such candidate)."""
        for t in self.teachers:
            if t.name == name:
                return t
        raise KeyError(name)

    @classmethod
    def read(cls, path: str | Path) -> Findings:
        """A findings file from disk, refused with a one-line error naming the file and the first bad field."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("file not found", path=path, fix="run step 06 of the case first") from None
        except (UnicodeDecodeError, ValueError) as error:
            raise InputError(f"not valid JSON ({error})", path=path, fix="re-run step 06") from None
        findings, problem = _checked(data)
        if findings is None:
            raise InputError(f"does not follow the findings contract: {problem}", path=path,
                             fix="re-run the case with this version of forensics")
        return findings


def contract_problem(findings: Mapping[str, Any]) -> str | None:
    """Why a findings document does not follow this contract (first field and how many), or None.

    For readers that must still show what they can of a broken file (the report) or report it among
    other problems (``forensics verify``); :meth:`Findings.read` refuses such a file instead.
    """
    return _checked(findings)[1]


def _checked(data: Any) -> tuple[Findings | None, str | None]:
    """The typed findings, or why the document does not follow the contract (the one wording of it)."""
    version = data.get("schema") if isinstance(data, Mapping) else None
    if version != SCHEMA:
        return None, f"it was written under findings schema {version!r}, not {SCHEMA}"
    try:
        return Findings.from_json(data), None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"{where}: {first['msg']} ({error.error_count()} problems)"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``findings.json`` (what ``docs/findings.schema.json`` holds)."""
    schema = Findings.model_json_schema(by_alias=True, mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://forensics.invalid/findings.schema.json", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ----------------------------------------------------------------------------------------- in memory

@dataclass(frozen=True)
class LineScores:
    """Every candidate's line z (full data and bootstrap), fused score and bootstrap wins.

    What :func:`forensics.evidence.score_lines` returns to step 06 and to the validation alike, so the
    validated method is the reported one. ``embedding``, ``wording``, ``stylometry`` and ``markers`` hold the
    lines' scored values for the findings entries (a line that was not scored, as ``markers`` on the
    validation's fast path, is empty).
    """

    line_z: Mapping[str, Mapping[str, float]]
    line_boot: Mapping[str, Mapping[str, np.ndarray]]
    fused: Mapping[str, float]
    fused_boot: Mapping[str, np.ndarray]
    beats: Mapping[str, float] = field(default_factory=dict)
    embedding: Mapping[str, Any] = field(default_factory=dict)
    wording: Mapping[str, Any] = field(default_factory=dict)
    stylometry: Mapping[str, Any] = field(default_factory=dict)
    markers: Mapping[str, Any] = field(default_factory=dict)
