"""Line 2 of evidence: stylometry (how the sources write, not what they say).

Five families of style features, each turned into a source-by-source similarity matrix, with bootstrap
replicates over prompts; step 06 (``evidence.py``, through ``weighing.py``) does the panel-relative scoring:

=====================  ==================================================================================
family                 what it measures
=====================  ==================================================================================
``mfw_cosine_delta``   the ``mfw`` most frequent words of the case, relative frequencies, z-scored across
                       every source of the case, cosine distance ("Cosine Delta", Smith & Aldridge 2011;
                       best of the Delta family in Evert et al. 2017; R ``stylo``'s "wurzburg")
``mfw_burrows_delta``  the same z-scores, mean absolute difference (Burrows 2002; ``stylo``'s "delta");
                       reported as a check on the cosine variant, not as an independent line
``char_ngrams``        character n-grams (default 3, not spanning a word boundary), top-k, Cosine Delta
``distorted_ngrams``   text distortion (Stamatatos 2017): the case's most frequent words are kept, every
                       other word masked, word 2-3-grams of the masked text: a tagger-free stand-in for
                       part-of-speech templates, the best closed-set teacher cue in Wadhwa et al. 2025
``formatting``         markdown and discourse habits (headers, bullets, bold, openings, closings,
                       refusals, ...; :data:`FORMATTING_FEATURES`), z-scored, Cosine Delta
=====================  ==================================================================================

Every similarity is **the negative distance** (``sim = -delta``), so higher means more alike and the
diagonal is 0, the maximum. Distances of different families are on different scales; the evidence
engine only ever compares a pair against the panel within one family.

Design (so that the bootstrap is cheap and memory does not grow with the case): a bootstrap resample is
an integer weight vector over prompts, so a source's pooled counts under it are ``weights @ counts`` of
its per-response counts. Each family (1) chooses its features once, on the full corpus; (2) reads the
responses a slice at a time and adds each slice's counts, under the full corpus and every resample at once,
to a pooled profile per source (:class:`PooledBlock`; the per-response counts of a million answers are
never held together); (3) gives a similarity matrix from the pooled profiles, z-scored across all sources
*of each replicate* (the population the z-scores are taken over is part of what is resampled). The
bootstrap expresses sampling uncertainty of the profiles, not of the feature choice.

Z-scores use the sample standard deviation (``ddof=1``), as ``stylo`` does (R's ``scale()``). A feature
that is constant across the sources gets z = 0 (it carries no information; ``scale()`` would give NaN).

Response length is a confound, not evidence (terse models look alike whatever their lineage): it is
reported per source in the ``length`` table (words per response, mean log-length), never scored.

Layout: ``params`` (:class:`StyloParams`), ``tokens`` (the tokeniser), ``ngrams`` (n-gram machinery,
character n-grams, feature blocks and their pooling), ``words`` (the word families, streamed),
``distortion`` (text distortion), ``formatting`` (formatting habits), ``features`` (the families of a
case, pooled once), ``delta`` (z-scores, Burrows' and Cosine Delta, the similarities), ``summary``
(tables and ``artifacts/stylometry.json``), ``step`` (step 03).
"""

from forensics.exchanges import CorpusLike
from forensics.scoring import bootstrap_weights, jsonable
from forensics.stylometry.delta import (
    FAMILIES,
    burrows_delta,
    cosine_delta,
    stylometric_similarities,
    zscore,
)
from forensics.stylometry.distortion import MASK_DIGITS, MASK_WORD, distort
from forensics.stylometry.features import StyloFeatures, stylometric_features
from forensics.stylometry.formatting import FORMATTING_FEATURES, FormatFeature, format_scale, formatting_matrix
from forensics.stylometry.ngrams import (
    FeatureBlock,
    PooledBlock,
    ngram_occurrences,
    pool,
    pooled_profiles,
)
from forensics.stylometry.params import StyloParams, params_from
from forensics.stylometry.step import ARTIFACT, STEP, run_step
from forensics.stylometry.summary import stylometric_tables, summarise_stylometry
from forensics.stylometry.tokens import WORD_PATTERN, is_word, normalise, tokenize

__all__ = [
    "ARTIFACT",
    "FAMILIES",
    "FORMATTING_FEATURES",
    "MASK_DIGITS",
    "MASK_WORD",
    "STEP",
    "WORD_PATTERN",
    "CorpusLike",
    "FeatureBlock",
    "FormatFeature",
    "PooledBlock",
    "StyloFeatures",
    "StyloParams",
    "bootstrap_weights",
    "burrows_delta",
    "cosine_delta",
    "distort",
    "format_scale",
    "formatting_matrix",
    "is_word",
    "jsonable",
    "ngram_occurrences",
    "normalise",
    "params_from",
    "pool",
    "pooled_profiles",
    "run_step",
    "stylometric_features",
    "stylometric_similarities",
    "stylometric_tables",
    "summarise_stylometry",
    "tokenize",
    "zscore",
]
