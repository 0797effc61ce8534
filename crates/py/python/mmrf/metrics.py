"""The offline metrics of `mmrf eval` on NumPy arrays, one entry per impression.

Both are the Rust functions the CLI calls (`mmrf_metrics`), so a score file dumped by
`mmrf eval --dump-scores` gives the same figures here as in `mmrf eval --json`.
"""

from typing import Optional, Tuple

import numpy as np

from mmrf import _native


def _users(users) -> np.ndarray:
    """User ids as uint32: whole numbers in [0, 2^32), or a ``ValueError`` naming the first
    that is not (a float id such as 1.5 would otherwise be cut to another user's)."""
    raw = np.asarray(users)
    if raw.dtype == np.bool_ or not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise ValueError(f"users: expected integer ids, got an array of {raw.dtype}")
    as_float = raw.astype(np.float64, copy=False).reshape(-1)
    bad = ~np.isfinite(as_float) | (as_float != np.floor(as_float)) | (as_float < 0) | (as_float >= 2**32)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"users: impression {i} has user id {raw.reshape(-1)[i].item()!r}, not a whole number in [0, 2^32)")
    return np.ascontiguousarray(raw.reshape(-1), dtype=np.uint32)


def _finite(name: str, values) -> np.ndarray:
    """``values`` as float32, or a ``ValueError`` naming the first NaN or infinity."""
    out = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}: impression {i} is {out[i]}, not a finite number")
    return out


def gauc(users, labels, scores) -> Optional[Tuple[float, int, int]]:
    """GAUC over impressions grouped by user: ``(value, users, impressions)``.

    A user's AUC counts the pairs of their impressions with different labels; users are
    weighted by their impressions. ``None`` when no user has such a pair. User ids must be
    whole numbers, labels and scores finite: anything else raises ``ValueError`` naming
    the impression.
    """
    return _native.gauc(_users(users), _finite("labels", labels), _finite("scores", scores))


def ncis(users, rewards, pi, pi_beta, cap: float = 10.0, bootstrap: int = 500, seed: int = 0) -> dict:
    """Normalised capped importance sampling of the target policy's propensities ``pi``
    against the logging policy's ``pi_beta``: a dict with ``ncis``, its bootstrap 95 %
    interval over users ``ncis_ci``, the effective sample size ``ess``, ``ips``,
    ``snips``, ``cap`` and ``impressions``. A propensity outside (0, 1], a reward that is
    not finite or a user id that is not a whole number raises ``ValueError`` naming the
    impression; ``bootstrap`` is at most 100,000 resamples.
    """
    return _native.ncis(
        _users(users),
        np.ascontiguousarray(rewards, dtype=np.float32),
        np.ascontiguousarray(pi, dtype=np.float32),
        np.ascontiguousarray(pi_beta, dtype=np.float32),
        cap=float(cap),
        bootstrap=int(bootstrap),
        seed=int(seed),
    )
