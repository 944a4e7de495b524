"""`--limit N`: a deterministic subset for a quick look.

Stratified by label where samples have one (each label keeps its share, by largest remainder),
and within a label the samples whose (seed, id) hashes lowest: the choice depends on neither file
order nor the machine, so the same command picks the same samples everywhere.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any, Sequence


def _stratum(sample: Any):
    labels = getattr(sample, "labels", None)
    if labels:
        return labels[0]
    return getattr(sample, "label", None)


def _rank(seed: int, sample_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{sample_id}".encode(), digest_size=8).digest()


def limited(samples: Sequence, n: int, seed: int = 0) -> list:
    """At most `n` of `samples`, in their original order."""
    if n >= len(samples):
        return list(samples)
    groups: dict = defaultdict(list)
    for sample in samples:
        groups[_stratum(sample)].append(sample)
    shares = {key: n * len(group) / len(samples) for key, group in groups.items()}
    take = {key: int(share) for key, share in shares.items()}
    by_remainder = sorted(groups, key=lambda key: (-(shares[key] - take[key]), str(key)))
    for key in by_remainder[: n - sum(take.values())]:
        take[key] += 1
    chosen = set()
    for key, group in groups.items():
        chosen.update(id(s) for s in sorted(group, key=lambda s: _rank(seed, str(s.id)))[: take[key]])
    return [s for s in samples if id(s) in chosen]


def record(total: int, n: int, seed: int) -> dict:
    """What results.json says of the subset."""
    return {"n": min(n, total), "of": total, "seed": seed, "stratified_by": "first label"}
