"""The case file: what a valid one turns into (schema errors are covered by tests/test_bad_inputs.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from forensics.case import Case, Parameters, family_groups, load_case, looks_like_path, panel_families
from forensics.errors import CaseFileError
from forensics.notebook import open_case
from forensics.scoring import MIN_PANEL

ROW = '{"prompt": "p", "response": "r"}\n'


def make_case(tmp_path: Path, extra: str = "", refs: int = 3) -> Path:
    (tmp_path / "ex").mkdir(exist_ok=True)
    for name in ["s", "t", *[f"r{i}" for i in range(refs)]]:
        (tmp_path / "ex" / f"{name}.jsonl").write_text(ROW, encoding="utf-8")
    text = ["case: case-1_A", "title: A title", "suspect:", "  name: sus", "  path: ex/s.jsonl",
            "  why: the model under suspicion", "  base_model: LLaMA-7B", "teachers:",
            "  - {name: tea, path: ./ex/t.jsonl, why: candidate}", "references:"]
    text += [f"  - {{name: ref{i}, path: ex/sub/../r{i}.jsonl}}" for i in range(refs)]
    path = tmp_path / "case.yaml"
    path.write_text("\n".join(text) + "\n" + extra, encoding="utf-8")
    return path


def test_valid_case_resolves_sources_in_order(tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path))
    assert isinstance(case, Case)
    assert case.case_id == "case-1_A" and case.title == "A title"
    assert case.case_path == (tmp_path / "case.yaml").resolve()
    assert case.case_dir == tmp_path.resolve()
    assert [s.name for s in case.sources] == ["sus", "tea", "ref0", "ref1", "ref2"]
    assert [s.role for s in case.sources] == ["suspect", "teacher", "reference", "reference", "reference"]
    assert case.suspect.why == "the model under suspicion" and case.suspect.base_model == "LLaMA-7B"
    assert case.teachers[0].why == "candidate" and case.teachers[0].base_model is None
    assert case.teachers[0].rel_path == "ex/t.jsonl"
    assert case.references[0].rel_path == "ex/r0.jsonl"  # ``sub/..`` normalised away
    assert all(s.path.is_absolute() and s.path.is_file() for s in case.sources)
    assert case.parameters == Parameters()
    assert case.warnings == []
    assert case.source("tea") is case.teachers[0]


def test_to_dict_is_json_and_portable(tmp_path: Path) -> None:
    data = load_case(make_case(tmp_path)).to_dict()
    text = json.dumps(data)
    assert str(tmp_path) not in text  # relative paths only: the manifest hash does not depend on the machine
    assert data["case"] == "case-1_A" and data["case_file"] == "case.yaml"
    assert data["suspect"] == {"name": "sus", "role": "suspect", "path": "ex/s.jsonl",
                               "why": "the model under suspicion", "base_model": "LLaMA-7B"}
    assert data["parameters"]["min_prompts"] == 30


def test_parameters_parsed_and_frozen(tmp_path: Path) -> None:
    (tmp_path / "models" / "mini").mkdir(parents=True)
    extra = ("parameters:\n  embedding_model: models/mini\n  seed: 7\n  max_response_chars: 100\n"
             "  min_prompts: 5\n  bootstrap: 10\n  permutations: 20\n  mfw: 50\n  opening_words: 12\n"
             "  umap_max_points: 99\n"
             "  canaries: [\"zebra-canary\", \"x y\"]\n  inconclusive_band: [-2, 0.5]\n")
    case = load_case(make_case(tmp_path, extra))
    p = case.parameters
    assert (p.seed, p.max_response_chars, p.min_prompts, p.bootstrap, p.permutations, p.mfw, p.opening_words,
            p.umap_max_points) == (7, 100, 5, 10, 20, 50, 12, 99)
    assert p.canaries == ("zebra-canary", "x y") and p.inconclusive_band == (-2.0, 0.5)
    assert p.embedding_model == "models/mini"  # as written: the hash does not depend on the machine
    assert case.embedding_model_path == (tmp_path / "models" / "mini").resolve()
    assert p.to_dict()["canaries"] == ["zebra-canary", "x y"]
    assert p.to_dict()["inconclusive_band"] == [-2.0, 0.5]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seed = 1  # type: ignore[misc]


def test_empty_parameters_mean_defaults(tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path, "parameters:\n"))
    assert case.parameters == Parameters() and case.embedding_model_path is None
    assert Parameters().to_dict() == {"embedding_model": None, "embedding_backend": "torch", "seed": 0,
                                      "max_response_chars": 20000,
                                      "min_prompts": 30, "bootstrap": 500, "permutations": 2000,
                                      "mfw": 300, "opening_words": 40, "umap_max_points": 4000, "canaries": [],
                                      "inconclusive_band": [-0.30103, 0.30103]}


def test_parameters_from_dict_validates_without_lines() -> None:
    assert Parameters.from_dict({"seed": 3}).seed == 3
    assert Parameters.from_dict(None) == Parameters()
    with pytest.raises(CaseFileError, match="unknown key 'sed'"):
        Parameters.from_dict({"sed": 3})


def test_a_panel_of_one_model_line_is_a_warning_not_an_error(tmp_path: Path) -> None:
    """References may name their family like teachers; those sharing one count once, so two references of
    two lines are enough to name a candidate and two (or three) of one line get the small_panel warning."""
    case = load_case(make_case(tmp_path, refs=2))
    assert len(case.references) == 2 and case.warnings == []
    assert case.reference_family == {"ref0": None, "ref1": None}
    path = make_case(tmp_path, refs=3)
    path.write_text(path.read_text(encoding="utf-8").replace(".jsonl}", ".jsonl, family: Twin line}"),
                    encoding="utf-8")
    case = load_case(path)
    assert set(case.reference_family.values()) == {"Twin line"}
    assert [w.split(":")[0] for w in case.warnings] == ["small_panel"]
    assert "the 3 reference models are all of one model line" in case.warnings[0]
    assert case.to_dict()["references"][0]["family"] == "Twin line"
    assert panel_families(["a", "b", "c"], {"a": "X", "b": "X"}) == 2
    assert panel_families(["a", "b"], {"a": "Vendor  C", "b": "vendor c"}) == 1  # case and spacing aside
    assert panel_families(["a", "X"], {"a": "X"}) == 2  # a family named like another reference is not it


def test_family_groups_merge_spellings_of_a_declared_family_but_never_teachers_without_one() -> None:
    got = family_groups(["a1", "b", "a2"], {"a1": "A", "a2": "A", "b": None})
    assert list(got.items()) == [("A", ["a1", "a2"]), ("b", ["b"])]
    # spellings of one declared family are one family, under the first in case order
    got = family_groups(["a1", "b", "a2"], {"a1": "Vendor  A", "a2": "vendor a", "b": None})
    assert list(got.items()) == [("Vendor  A", ["a1", "a2"]), ("b", ["b"])]
    # a teacher without a family joins a family spelt exactly like its name ("teachers sharing it")...
    assert family_groups(["c", "b"], {"c": "b"}) == {"b": ["c", "b"]}
    # ... but two teachers without one, or one spelt only like a family, stay families of their own
    assert family_groups(["GPT-4", "gpt-4"], {}) == {"GPT-4": ["GPT-4"], "gpt-4": ["gpt-4"]}
    assert family_groups(["c", "b"], {"c": "B"}) == {"B": ["c"], "b": ["b"]}
    assert family_groups(["b", "c"], {"b": "X", "c": "b"}) == {"X": ["b"], "b": ["c"]}  # warned at load


def test_a_family_spelt_two_ways_or_shared_by_a_reference_and_a_teacher_is_warned(tmp_path: Path) -> None:
    """Teachers naming one family in two spellings are weighed as one family (as reference lines are
    counted), and the case says so; a reference declared of a candidate's family (or named like a teacher
    without one) is warned: it understates the evidence for that family."""
    path = make_case(tmp_path, refs=2)
    (tmp_path / "ex" / "t2.jsonl").write_text(ROW, encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    text = text.replace("why: candidate}", "why: candidate, family: Vendor A}\n"
                        "  - {name: tea2, path: ex/t2.jsonl, family: vendor  a}")
    text = text.replace("r1.jsonl}", "r1.jsonl, family: VENDOR A}")
    path.write_text(text, encoding="utf-8")
    case = load_case(path)
    assert case.warnings == [
        "family_spelling: teachers tea, tea2 name their family 'Vendor A', 'vendor  a', which differ only in case "
        "or spacing; they are weighed as one family, 'Vendor A'",
        "reference_in_teacher_family: reference ref1 is declared of family 'VENDOR A', the family 'Vendor A' of "
        "teacher(s) tea, tea2; the panel should be independent of every candidate: this reference makes the "
        "evidence for that family look weaker than it is, and the other candidates' stronger beside it"]
    unfamilied = text.replace(", family: Vendor A}", "}").replace(", family: vendor  a}", "}")
    path.write_text(unfamilied.replace("family: VENDOR A}", "family: tea3}"), encoding="utf-8")
    assert load_case(path).warnings == []  # a reference's family named like no teacher: nothing to say
    path.write_text(unfamilied.replace("family: VENDOR A}", "family: TEA}"), encoding="utf-8")
    warned = load_case(path).warnings
    assert len(warned) == 1 and "the family 'tea' of teacher(s) tea;" in warned[0]
    # a teacher without a family beside a family spelt like its name in another case: weighed apart, said so
    path.write_text(unfamilied.replace("path: ex/t2.jsonl}", "path: ex/t2.jsonl, family: TEA}"), encoding="utf-8")
    assert load_case(path).warnings == [
        "family_spelling: the family 'TEA' of teacher(s) tea2 is named like teacher tea, which is not in it; name "
        "the family otherwise",
        "family_spelling: the families 'tea', 'TEA' (a teacher without a family is one of its own) differ only in "
        "case or spacing but are weighed apart; give their teachers one `family` if they are one model line"]


@pytest.mark.parametrize("family", ["Vendor C\u200b", " Vendor C", "Vendor\u202eC", "", "x" * 201])
def test_a_family_that_could_hide_a_difference_is_refused_with_its_line(tmp_path: Path, family: str) -> None:
    """A family decides which references count as one model line: invisible or control characters,
    surrounding spaces or an empty or overlong value are refused, naming the line."""
    path = make_case(tmp_path, refs=2)
    declared = f"ex/r1.jsonl, family: {json.dumps(family)}}}"
    text = path.read_text(encoding="utf-8").replace("ex/sub/../r1.jsonl}", declared)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CaseFileError, match="'family' must be a non-empty string") as err:
        load_case(path)
    assert "case.yaml" in str(err.value) and "\n" not in str(err.value)


def test_a_single_reference_is_refused_where_the_evidence_is_asked_for(tmp_path: Path) -> None:
    # one reference has no spread to measure against: the run and the notebooks refuse it with its line
    # before any step, instead of failing in a cell of step 02; reading and joining alone accept it
    path = make_case(tmp_path, refs=1)
    assert len(load_case(path).references) == 1
    with pytest.raises(CaseFileError, match=r"case\.yaml:11: 'references' lists 1 model\(s\); a case needs at "
                                            r"least 2"):
        load_case(path, min_references=MIN_PANEL)
    with pytest.raises(CaseFileError, match=r"case\.yaml:11: 'references' lists 1 model"):
        open_case(path, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_embedding_model_name_is_not_a_path() -> None:
    assert not looks_like_path("all-MiniLM-L6-v2")
    assert looks_like_path("./mini") and looks_like_path("models/mini") and looks_like_path("/abs/mini")


def test_case_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(CaseFileError, match="case file not found"):
        load_case(tmp_path / "nope.yaml")


def test_error_line_points_at_the_offending_key(tmp_path: Path) -> None:
    path = make_case(tmp_path, "parameters:\n  seed: 1\n  bootstrap: many\n")
    with pytest.raises(CaseFileError) as info:
        load_case(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert info.value.line is not None and "bootstrap" in lines[info.value.line - 1]
    assert info.value.path == str(path.resolve()) and info.value.fix


@pytest.mark.parametrize(("key", "value"), [("bootstrap", 100_000_000_000), ("seed", 2**32), ("bootstrap", 0),
                                            ("permutations", 10**7), ("seed", -1)])
def test_integer_parameters_out_of_range_stop_at_the_case_file(tmp_path: Path, key: str, value: int) -> None:
    """A few zeros too many would otherwise surface as hours of bootstrap inside a notebook."""
    path = make_case(tmp_path, f"parameters:\n  {key}: {value}\n")
    with pytest.raises(CaseFileError, match=f"parameter '{key}' is {value}; it must be from") as info:
        load_case(path)
    assert key in path.read_text(encoding="utf-8").splitlines()[info.value.line - 1]


def test_yaml_aliases_do_not_blow_up(tmp_path: Path) -> None:
    """Anchors/aliases are legal YAML; the line index visits each node once (no exponential walk)."""
    bomb = "x0: &a0 [1, 2]\n" + "".join(f"x{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40))
    with pytest.raises(CaseFileError, match="unknown key 'x0'"):
        load_case(make_case(tmp_path, bomb))
