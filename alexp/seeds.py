"""A run's independent random streams: one seed, one named stream per consumer (common random numbers).

The split, the initial draw and the model's seed depend only on the run seed, never on the strategy, so strategies
are compared on paired runs. Appending a name to STREAMS never shifts the others.
"""

from __future__ import annotations

import numpy as np

STREAMS = ("split", "initial", "acquisition", "oracle", "model", "eval", "stop", "curated_set", "unlabeled")


def stream(seed: int, name: str, *keys: int) -> np.random.Generator:
    """The generator of stream `name` (one of STREAMS) of run `seed`, optionally keyed further (by round)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(name), *keys)))


def stream_int(seed: int, name: str) -> int:
    """A 32-bit int seed from stream `name`, for APIs that take `random_state`."""
    return int(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(name),)).generate_state(1)[0])
