"""Oracles answer label requests for pool rows: simulated raters and the ways a person answers (see `Oracle`)."""

from alexp.oracles.base import Oracle, accepted
from alexp.oracles.difficulty import Difficulty
from alexp.oracles.files import Files
from alexp.oracles.label_studio import LabelStudio
from alexp.oracles.simulated import (ClassConditional, Column, Crowd, ExpertPanel, Noisy, Perfect,
                                     RaterVotes, Simulated, TargetKappa, expected_kappa, pairwise_kappa,
                                     rater_pair_kappa, rates_for_kappa)
from alexp.oracles.terminal import Terminal
from alexp.oracles.tiers import ModelLabels, Tiers

__all__ = ["Oracle", "accepted", "Files", "LabelStudio", "Terminal", "Simulated", "Perfect", "Noisy",
           "ClassConditional", "TargetKappa", "RaterVotes", "Column", "Difficulty", "Crowd", "ExpertPanel",
           "Tiers", "ModelLabels",
           "expected_kappa", "rates_for_kappa", "pairwise_kappa", "rater_pair_kappa"]
