"""Acquisition: which candidates of the pool to label next.

Every strategy is a small frozen dataclass (its fields are hyperparameters) called as
`strategy(model, pool, n, rng) -> n distinct candidate row indices`, and has one `conf/acquisition/*.yaml`
(the greedy oracle, an upper bound, also holds the truth the loop reveals to it).
Scores are pure functions where higher means "more worth labeling". Pool-wide scores are computed a block of
rows at a time with a running top-k: one pass over the features, O(block + k) extra memory, no pool copies.
"""

from alexp.acquisition.base import Acquisition, PoolView, blocks, check_compatible, select_top, top_k
from alexp.acquisition.bayesian import Bald, BatchBald, bald, batch_bald
from alexp.acquisition.boundary import BoundaryPairs
from alexp.acquisition.committee import KLDisagreement, VoteEntropy, consensus_kl, vote_entropy
from alexp.acquisition.diversity import Badge, Coreset, k_center_greedy
from alexp.acquisition.hybrid import ClassBalanced, ClusterMargin
from alexp.acquisition.neighbours import Neighbours
from alexp.acquisition.upper_bound import GreedyOracle
from alexp.acquisition.uncertainty import (DensityWeighted, Entropy, LeastConfidence, Margin, Random, entropy,
                                           least_confidence, margin)

__all__ = [
    "Acquisition", "PoolView", "blocks", "check_compatible", "select_top", "top_k",
    "Random", "Entropy", "Margin", "LeastConfidence", "DensityWeighted", "VoteEntropy", "KLDisagreement", "Coreset",
    "Badge", "ClusterMargin", "ClassBalanced", "Neighbours", "BoundaryPairs", "Bald", "BatchBald", "GreedyOracle",
    "entropy", "margin", "least_confidence", "vote_entropy", "consensus_kl", "k_center_greedy", "bald", "batch_bald",
]
