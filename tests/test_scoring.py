"""forensics.scoring: the panel-relative statistic pinned on matrices small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest

from forensics.scoring import (
    MIN_PANEL,
    affinities,
    bootstrap_indices,
    case_bootstrap,
    grouped_bootstrap_indices,
    line_entry,
    panel_relative,
    panel_size_z,
    percentile_interval,
    preference_z,
)

ONE_Z = 1.547719  # the by-hand raw z of 3.0 read for a 3-model panel (see the matrix below)


def symmetric(sources: list[str], pairs: dict[tuple[str, str], float]) -> np.ndarray:
    """A similarity matrix with 1 on the diagonal and the given off-diagonal values (both triangles)."""
    idx = {s: i for i, s in enumerate(sources)}
    sim = np.eye(len(sources))
    for (a, b), value in pairs.items():
        sim[idx[a], idx[b]] = sim[idx[b], idx[a]] = value
    assert len(pairs) == len(sources) * (len(sources) - 1) // 2, "every pair must be given once"
    return sim


# --------------------------------------------------------------------------------------------------
# One teacher, three references (5 x 5)
# --------------------------------------------------------------------------------------------------
#
#          S    T    A    B    C
#     S  1.0  0.9  0.5  0.4  0.3
#     T  0.9  1.0  0.6  0.5  0.7
#     A  0.5  0.6  1.0  0.4  0.6
#     B  0.4  0.5  0.4  1.0  0.2
#     C  0.3  0.7  0.6  0.2  1.0
#
# a(X, T) = sim(X, T) - mean over panel members R != X of sim(X, R):
#   a(S, T) = 0.9 - (0.5 + 0.4 + 0.3) / 3 = 0.9 - 0.4 = 0.5
#   a(A, T) = 0.6 - (0.4 + 0.6) / 2       = 0.6 - 0.5 = 0.1
#   a(B, T) = 0.5 - (0.4 + 0.2) / 2       = 0.5 - 0.3 = 0.2
#   a(C, T) = 0.7 - (0.6 + 0.2) / 2       = 0.7 - 0.4 = 0.3
# panel mean = 0.2; centred -0.1, 0.0, 0.1; sum of squares 0.02; dof = 3 values - 1 teacher = 2;
# sd = sqrt(0.02 / 2) = 0.1; raw z = (0.5 - 0.2) / 0.1 = 3.0, read for a 3-model panel (panel_size_z):
# t = 3 / sqrt(4/3) = 2.598 on 2 degrees of freedom, tail 0.0608, z = 1.5477

ONE_SOURCES = ["S", "T", "A", "B", "C"]
ONE_PANEL = ["A", "B", "C"]
ONE = symmetric(ONE_SOURCES, {
    ("S", "T"): 0.9, ("S", "A"): 0.5, ("S", "B"): 0.4, ("S", "C"): 0.3,
    ("T", "A"): 0.6, ("T", "B"): 0.5, ("T", "C"): 0.7,
    ("A", "B"): 0.4, ("A", "C"): 0.6,
    ("B", "C"): 0.2,
})


def test_affinities_of_the_references_leave_each_reference_out_of_its_own_panel() -> None:
    got = affinities(ONE, ONE_SOURCES, "T", ONE_PANEL, ONE_PANEL)
    np.testing.assert_allclose(got, [0.1, 0.2, 0.3], atol=1e-12)


def test_affinity_of_the_suspect_uses_the_whole_panel() -> None:
    got = affinities(ONE, ONE_SOURCES, "T", ONE_PANEL, ["S"])
    np.testing.assert_allclose(got, [0.5], atol=1e-12)


def test_panel_relative_one_teacher_by_hand() -> None:
    out = panel_relative(ONE, ONE_SOURCES, "S", ["T"], ONE_PANEL)["T"]
    assert float(out["suspect"]) == pytest.approx(0.5)
    np.testing.assert_allclose(out["references"], [0.1, 0.2, 0.3], atol=1e-12)
    assert float(out["sd"]) == pytest.approx(0.1)
    assert float(out["raw_z"]) == pytest.approx(3.0)
    assert float(out["z"]) == pytest.approx(ONE_Z, abs=1e-6) == float(panel_size_z(3.0, 3))


def test_source_order_does_not_matter() -> None:
    order = [4, 2, 0, 3, 1]
    shuffled = ONE[np.ix_(order, order)]
    sources = [ONE_SOURCES[i] for i in order]
    out = panel_relative(shuffled, sources, "S", ["T"], ONE_PANEL)["T"]
    assert float(out["z"]) == pytest.approx(ONE_Z, abs=1e-6)


def test_teacher_centrality_cancels() -> None:
    """Adding a constant to every similarity of T (T close to everything) changes no z."""
    shifted = ONE.copy()
    t = ONE_SOURCES.index("T")
    shifted[t, :] += 0.05
    shifted[:, t] += 0.05
    out = panel_relative(shifted, ONE_SOURCES, "S", ["T"], ONE_PANEL)["T"]
    assert float(out["z"]) == pytest.approx(ONE_Z, abs=1e-6)


def test_suspect_centrality_cancels() -> None:
    """A suspect that is uniformly closer to every model (a 'generic' one) gets the same z."""
    shifted = ONE.copy()
    s = ONE_SOURCES.index("S")
    shifted[s, :] += 0.1
    shifted[:, s] += 0.1
    out = panel_relative(shifted, ONE_SOURCES, "S", ["T"], ONE_PANEL)["T"]
    assert float(out["z"]) == pytest.approx(ONE_Z, abs=1e-6)


# --------------------------------------------------------------------------------------------------
# Two teachers, two references (5 x 5): the spread is pooled over teachers
# --------------------------------------------------------------------------------------------------
#
#           S    T1   T2   A    B
#     S   1.0  0.9  0.6  0.3  0.5
#     T1  0.9  1.0  0.3  0.7  0.1
#     T2  0.6  0.3  1.0  0.0  0.8
#     A   0.3  0.7  0.0  1.0  0.2
#     B   0.5  0.1  0.8  0.2  1.0
#
# With two references each reference's own panel is the other one:
#   a(A, T1) = 0.7 - 0.2 = 0.5     a(B, T1) = 0.1 - 0.2 = -0.1   mean 0.2, centred +0.3, -0.3
#   a(A, T2) = 0.0 - 0.2 = -0.2    a(B, T2) = 0.8 - 0.2 = 0.6    mean 0.2, centred -0.4, +0.4
# pooled: sum of squares = 2 * 0.09 + 2 * 0.16 = 0.5; dof = 4 values - 2 teachers = 2; sd = sqrt(0.25) = 0.5
# (a per-teacher sd would be 0.424 for T1 and 0.566 for T2: the test tells pooling apart.)
# suspect: mean sim to the panel = (0.3 + 0.5) / 2 = 0.4
#   a(S, T1) = 0.9 - 0.4 = 0.5 -> raw z = (0.5 - 0.2) / 0.5 = 0.6
#   a(S, T2) = 0.6 - 0.4 = 0.2 -> raw z = (0.2 - 0.2) / 0.5 = 0.0
# read for a 2-model panel: t = 0.6 / sqrt(1.5) on 1 degree of freedom, z = 0.371858; 0 stays 0

TWO_SOURCES = ["S", "T1", "T2", "A", "B"]
TWO_PANEL = ["A", "B"]
TWO = symmetric(TWO_SOURCES, {
    ("S", "T1"): 0.9, ("S", "T2"): 0.6, ("S", "A"): 0.3, ("S", "B"): 0.5,
    ("T1", "T2"): 0.3, ("T1", "A"): 0.7, ("T1", "B"): 0.1,
    ("T2", "A"): 0.0, ("T2", "B"): 0.8,
    ("A", "B"): 0.2,
})


def test_panel_relative_two_teachers_pools_the_spread() -> None:
    out = panel_relative(TWO, TWO_SOURCES, "S", ["T1", "T2"], TWO_PANEL)
    np.testing.assert_allclose(out["T1"]["references"], [0.5, -0.1], atol=1e-12)
    np.testing.assert_allclose(out["T2"]["references"], [-0.2, 0.6], atol=1e-12)
    assert float(out["T1"]["suspect"]) == pytest.approx(0.5)
    assert float(out["T2"]["suspect"]) == pytest.approx(0.2)
    assert float(out["T1"]["sd"]) == pytest.approx(0.5)
    assert float(out["T2"]["sd"]) == pytest.approx(0.5)
    assert float(out["T1"]["raw_z"]) == pytest.approx(0.6)
    assert float(out["T1"]["z"]) == pytest.approx(0.371858, abs=1e-6)
    assert float(out["T2"]["z"]) == pytest.approx(0.0, abs=1e-12)


def test_the_other_teacher_is_not_part_of_the_panel() -> None:
    """T2's similarities never enter T1's affinities (only the panel's do)."""
    changed = TWO.copy()
    i, j = TWO_SOURCES.index("S"), TWO_SOURCES.index("T2")
    changed[i, j] = changed[j, i] = 0.95
    out = panel_relative(changed, TWO_SOURCES, "S", ["T1"], TWO_PANEL)["T1"]
    assert float(out["suspect"]) == pytest.approx(0.5)


def test_panel_of_one_reference_is_refused() -> None:
    assert MIN_PANEL == 2
    with pytest.raises(ValueError, match="at least 2 references"):
        panel_relative(TWO, TWO_SOURCES, "S", ["T1", "T2"], ["A"])


def test_identical_references_give_an_infinite_or_undefined_z_not_an_exception() -> None:
    """A panel with no spread at all: the division is guarded (no warning raised as an error)."""
    sources = ["S", "T", "A", "B"]
    sim = symmetric(sources, {("S", "T"): 0.9, ("S", "A"): 0.4, ("S", "B"): 0.4, ("T", "A"): 0.5,
                              ("T", "B"): 0.5, ("A", "B"): 0.4})
    out = panel_relative(sim, sources, "S", ["T"], ["A", "B"])["T"]
    assert float(out["sd"]) == 0.0
    assert not np.isfinite(float(out["z"]))


# --------------------------------------------------------------------------------------------------
# Stacked bootstrap replicates
# --------------------------------------------------------------------------------------------------

def random_similarities(rng: np.random.Generator, replicates: int, n_sources: int) -> np.ndarray:
    raw = rng.uniform(-0.2, 1.0, size=(replicates, n_sources, n_sources))
    sim = (raw + np.swapaxes(raw, -1, -2)) / 2
    idx = np.arange(n_sources)
    sim[:, idx, idx] = 1.0
    return sim


def test_stacked_input_equals_looping_over_replicates() -> None:
    sources = ["S", "T1", "T2", "A", "B", "C"]
    teachers, panel = ["T1", "T2"], ["A", "B", "C"]
    stack = random_similarities(np.random.default_rng(7), 9, len(sources))
    stacked = panel_relative(stack, sources, "S", teachers, panel)
    for t in teachers:
        assert stacked[t]["z"].shape == (9,)
        assert stacked[t]["references"].shape == (9, 3)
        for b in range(len(stack)):
            single = panel_relative(stack[b], sources, "S", teachers, panel)[t]
            assert float(stacked[t]["z"][b]) == pytest.approx(float(single["z"]), rel=1e-12)
            assert float(stacked[t]["suspect"][b]) == pytest.approx(float(single["suspect"]), rel=1e-12)
            assert float(stacked[t]["sd"][b]) == pytest.approx(float(single["sd"]), rel=1e-12)
            np.testing.assert_allclose(stacked[t]["references"][b], single["references"], rtol=1e-12)


def test_stacked_affinities_equal_looping() -> None:
    stack = random_similarities(np.random.default_rng(3), 4, 5)
    got = affinities(stack, ONE_SOURCES, "T", ONE_PANEL, ["S", *ONE_PANEL])
    assert got.shape == (4, 4)
    for b in range(4):
        np.testing.assert_allclose(got[b], affinities(stack[b], ONE_SOURCES, "T", ONE_PANEL,
                                                      ["S", *ONE_PANEL]), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Bootstrap indices and intervals
# --------------------------------------------------------------------------------------------------

def test_bootstrap_indices_shape_range_and_determinism() -> None:
    first = bootstrap_indices(37, 11, seed=5)
    assert first.shape == (11, 37)
    assert first.min() >= 0 and first.max() < 37
    assert np.issubdtype(first.dtype, np.integer)
    np.testing.assert_array_equal(first, bootstrap_indices(37, 11, seed=5))
    assert not np.array_equal(first, bootstrap_indices(37, 11, seed=6))
    # resampling with replacement: some prompt is drawn twice in some replicate
    assert any(len(np.unique(row)) < 37 for row in first)


def test_bootstrap_indices_more_replicates_extend_the_same_stream() -> None:
    """The first B replicates do not depend on how many more are drawn (a stable, seeded stream)."""
    np.testing.assert_array_equal(bootstrap_indices(20, 3, seed=0), bootstrap_indices(20, 8, seed=0)[:3])


def test_bootstrap_indices_zero_replicates() -> None:
    assert bootstrap_indices(10, 0, seed=0).shape == (0, 10)


def test_grouped_resamples_keep_each_conversations_turns_together() -> None:
    groups = [f"c{i // 3}" for i in range(30)] + ["lone-1", "lone-2"]  # ten 3-turn conversations, two singles
    boot = grouped_bootstrap_indices(groups, 200, seed=3)
    assert boot.shape == (200, 32) and boot.min() >= 0 and boot.max() < 32
    np.testing.assert_array_equal(boot, grouped_bootstrap_indices(groups, 200, seed=3))
    assert not np.array_equal(boot, grouped_bootstrap_indices(groups, 200, seed=4))
    for row in boot:
        pos = 0
        while pos < len(row):  # each drawn group's prompts lie end to end, in order (the last may be cut)
            first = int(row[pos])
            size = 1 if first >= 30 else 3
            expected = np.arange(first, first + size)[: len(row) - pos]
            assert first >= 30 or first % 3 == 0
            np.testing.assert_array_equal(row[pos:pos + len(expected)], expected)
            pos += len(expected)
    # whole conversations drawn: more replicates repeat a conversation than a prompt-wise draw would make
    # a conversation's turns co-occur; the spread of a conversation-level mean is the grouped one
    values = np.repeat(np.arange(10.0), 3).tolist() + [4.5, 4.5]
    grouped = np.asarray(values)[boot].mean(axis=1).std()
    single = np.asarray(values)[bootstrap_indices(32, 200, seed=3)].mean(axis=1).std()
    assert grouped > 1.3 * single


def test_a_case_without_conversations_resamples_prompts_as_before() -> None:
    from forensics.case import Parameters
    from forensics.exchanges import AlignedCorpus

    params = Parameters()
    corpus = AlignedCorpus(["a", "b", "c"], ["p"] * 3, {"s": ["x"] * 3, "t": ["y"] * 3}, "s", ["t"], [])
    expected = bootstrap_indices(3, params.bootstrap, params.seed)
    np.testing.assert_array_equal(case_bootstrap(corpus, params), expected)
    alone = AlignedCorpus(["a", "b", "c"], ["p"] * 3, {"s": ["x"] * 3, "t": ["y"] * 3}, "s", ["t"], [],
                          groups=["g1", "g2", "g3"])  # every conversation of one turn: the same resamples
    np.testing.assert_array_equal(case_bootstrap(alone, params), expected)
    turns = AlignedCorpus(["a", "b", "c"], ["p"] * 3, {"s": ["x"] * 3, "t": ["y"] * 3}, "s", ["t"], [],
                          groups=["g1", "g1", "g2"])
    np.testing.assert_array_equal(case_bootstrap(turns, params),
                                  grouped_bootstrap_indices(["g1", "g1", "g2"], params.bootstrap, params.seed))


def test_percentile_interval_of_0_to_100() -> None:
    assert percentile_interval(np.arange(101)) == [2.5, 97.5]
    assert percentile_interval(np.arange(101), level=0.5) == [25.0, 75.0]


def test_percentile_interval_ignores_non_finite_values() -> None:
    values = np.concatenate([np.arange(101, dtype=float), [np.nan, np.inf, -np.inf]])
    assert percentile_interval(values) == [2.5, 97.5]


def test_percentile_interval_of_too_few_values() -> None:
    assert percentile_interval(np.array([1.0])) == [None, None]
    assert percentile_interval(np.array([np.nan, np.nan, 3.0])) == [None, None]
    assert percentile_interval(np.array([])) == [None, None]


def test_percentile_interval_rounds_to_six_decimals() -> None:
    low, high = percentile_interval(np.array([1 / 3, 2 / 3]), level=0.0)
    assert low == high == 0.5


# --------------------------------------------------------------------------------------------------
# The JSON entry
# --------------------------------------------------------------------------------------------------

def test_line_entry_core_fields() -> None:
    full = panel_relative(ONE, ONE_SOURCES, "S", ["T"], ONE_PANEL)["T"]
    entry = line_entry(full, None, ONE_PANEL, 12, "what is measured")
    assert entry == {"statistic": "what is measured", "suspect_value": 0.5,
                     "panel_values": {"A": 0.1, "B": 0.2, "C": 0.3}, "z": ONE_Z, "n_prompts": 12}


def test_line_entry_adds_bootstrap_intervals_of_the_suspect_value_and_of_z() -> None:
    full = panel_relative(ONE, ONE_SOURCES, "S", ["T"], ONE_PANEL)["T"]
    boot = {"z": np.arange(101, dtype=float), "suspect": np.arange(101, dtype=float) / 100}
    entry = line_entry(full, boot, ONE_PANEL, 12, "x")
    assert entry["ci95"] == [0.025, 0.975]  # of suspect_value, the quantity drawn in the figures
    assert entry["z_ci95"] == [2.5, 97.5]


def test_line_entry_bootstrap_from_stacked_matrices() -> None:
    """The interval of a real bootstrap (stacked matrices) brackets the full-data values."""
    rng = np.random.default_rng(0)
    stack = np.clip(ONE + rng.normal(0, 0.01, size=(200, 5, 5)), -1, 1)
    stack = (stack + np.swapaxes(stack, -1, -2)) / 2
    full = panel_relative(ONE, ONE_SOURCES, "S", ["T"], ONE_PANEL)["T"]
    boot = panel_relative(stack, ONE_SOURCES, "S", ["T"], ONE_PANEL)["T"]
    entry = line_entry(full, boot, ONE_PANEL, 12, "x")
    low, high = entry["ci95"]
    assert low < 0.5 < high
    z_low, z_high = entry["z_ci95"]
    assert z_low < ONE_Z < z_high


def test_line_entry_writes_non_finite_z_as_null() -> None:
    full = {"suspect": 0.1, "references": np.array([0.0, 0.0]), "z": np.inf}
    assert line_entry(full, None, ["A", "B"], 3, "x")["z"] is None


# --------------------------------------------------------------------------------------------------
# The semantic preference z: one half of the comparison statistic (weighing.comparison_statistic)
# --------------------------------------------------------------------------------------------------
#
# Two sibling candidates T1, T2 (alike for every model) and three references. d(X) = sim(X, T1) - sim(X, T2):
#   d(S) = 0.80 - 0.70 = 0.10;  d(A) = 0.60 - 0.62 = -0.02;  d(B) = 0.50 - 0.50 = 0;  d(C) = 0.70 - 0.68 = 0.02
# panel mean 0, sd (ddof 1) 0.02: raw z = 0.10 / 0.02 = 5.0, read for a 3-model panel.

SIB_SOURCES = ["S", "T1", "T2", "A", "B", "C"]
SIB_PANEL = ["A", "B", "C"]
SIB = symmetric(SIB_SOURCES, {
    ("S", "T1"): 0.80, ("S", "T2"): 0.70, ("S", "A"): 0.50, ("S", "B"): 0.40, ("S", "C"): 0.45,
    ("T1", "T2"): 0.90, ("T1", "A"): 0.60, ("T1", "B"): 0.50, ("T1", "C"): 0.70,
    ("T2", "A"): 0.62, ("T2", "B"): 0.50, ("T2", "C"): 0.68,
    ("A", "B"): 0.40, ("A", "C"): 0.50,
    ("B", "C"): 0.30,
})


def test_preference_z_by_hand() -> None:
    got = preference_z(SIB, SIB_SOURCES, "S", "T1", "T2", SIB_PANEL)
    assert got == pytest.approx(float(panel_size_z(5.0, 3)), abs=1e-9)
    assert got > 1.0


def test_preference_z_is_antisymmetric_and_ignores_source_order() -> None:
    forward = preference_z(SIB, SIB_SOURCES, "S", "T1", "T2", SIB_PANEL)
    assert preference_z(SIB, SIB_SOURCES, "S", "T2", "T1", SIB_PANEL) == pytest.approx(-forward, abs=1e-12)
    order = [5, 3, 0, 2, 4, 1]
    shuffled = SIB[np.ix_(order, order)]
    assert preference_z(shuffled, [SIB_SOURCES[i] for i in order], "S", "T1", "T2", SIB_PANEL) == \
        pytest.approx(forward, abs=1e-12)


def test_a_clear_preference_between_siblings_that_their_z_difference_hides() -> None:
    """Measured in the spread of affinities to every candidate, the siblings' z differ by under one (0.70);
    measured in the panel's spread of the preference itself, the suspect's preference is 1.97 (raw 5.0,
    against a raw z difference of 1.27)."""
    z = panel_relative(SIB, SIB_SOURCES, "S", ["T1", "T2"], SIB_PANEL)
    difference = float(z["T1"]["z"] - z["T2"]["z"])
    assert difference == pytest.approx(0.701979, abs=1e-6)
    assert float(z["T1"]["raw_z"] - z["T2"]["raw_z"]) == pytest.approx(1.27, abs=1e-5)
    assert preference_z(SIB, SIB_SOURCES, "S", "T1", "T2", SIB_PANEL) > 2.5 * difference


def test_preference_z_without_a_spread_or_a_candidate_is_undefined_and_one_reference_is_refused() -> None:
    flat = SIB.copy()
    i, j = SIB_SOURCES.index("A"), SIB_SOURCES.index("T2")
    flat[i, j] = flat[j, i] = 0.60  # A now has no preference either: every reference's d is 0 but C's ...
    k, m = SIB_SOURCES.index("C"), SIB_SOURCES.index("T2")
    flat[k, m] = flat[m, k] = 0.70  # ... and C's: no spread
    assert np.isnan(preference_z(flat, SIB_SOURCES, "S", "T1", "T2", SIB_PANEL))
    assert np.isnan(preference_z(SIB, SIB_SOURCES, "S", "T1", "absent", SIB_PANEL))
    with pytest.raises(ValueError, match="at least 2 references"):
        preference_z(SIB, SIB_SOURCES, "S", "T1", "T2", ["A"])
