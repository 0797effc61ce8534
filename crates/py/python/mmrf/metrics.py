"""The offline metrics of `mmrf eval` on NumPy arrays, one entry per impression.

Both are the Rust functions the CLI calls (`mmrf_metrics`), so a score file dumped by
`mmrf eval --dump-scores` gives the same figures here as in `mmrf eval --json`.
"""

from typing import Optional, Tuple

import numpy as np

from mmrf import _native


def gauc(users, labels, scores) -> Optional[Tuple[float, int, int]]:
    """GAUC over impressions grouped by user: ``(value, users, impressions)``.

    A user's AUC counts the pairs of their impressions with different labels; users are
    weighted by their impressions. ``None`` when no user has such a pair.
    """
    return _native.gauc(
        np.ascontiguousarray(users, dtype=np.uint32),
        np.ascontiguousarray(labels, dtype=np.float32),
        np.ascontiguousarray(scores, dtype=np.float32),
    )


def ncis(users, rewards, pi, pi_beta, cap: float = 10.0, bootstrap: int = 500, seed: int = 0) -> dict:
    """Normalised capped importance sampling of the target policy's propensities ``pi``
    against the logging policy's ``pi_beta``: a dict with ``ncis``, its bootstrap 95 %
    interval over users ``ncis_ci``, the effective sample size ``ess``, ``ips``,
    ``snips``, ``cap`` and ``impressions``. A propensity outside (0, 1] raises
    ``ValueError`` naming the impression.
    """
    return _native.ncis(
        np.ascontiguousarray(users, dtype=np.uint32),
        np.ascontiguousarray(rewards, dtype=np.float32),
        np.ascontiguousarray(pi, dtype=np.float32),
        np.ascontiguousarray(pi_beta, dtype=np.float32),
        cap=float(cap),
        bootstrap=int(bootstrap),
        seed=int(seed),
    )
