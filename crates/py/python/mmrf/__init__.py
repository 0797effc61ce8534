"""mmrf from Python: the ground-truth short-video world as a Gymnasium environment, the
offline metrics (GAUC, NCIS), trained runs and the online A/B test of the mmrf CLI,
computed by the same Rust code.

    import mmrf
    env = mmrf.WorldEnv(seed=7)
    obs, info = env.reset(seed=1)

Importing it registers ``mmrf/World-v0`` with Gymnasium, so ``gymnasium.make("mmrf/World-v0",
seed=7)`` and ``gymnasium.make_vec("mmrf/World-v0", num_envs=4)`` work too.
"""

from mmrf._native import World, signals
from mmrf.env import WorldEnv, WorldVectorEnv
from mmrf.run import Run, ab
from mmrf import metrics
from mmrf.wrappers import CandidateFeatures

import gymnasium as _gym

#: The id under which :class:`WorldEnv` (and, for ``make_vec``, :class:`WorldVectorEnv`)
#: is registered with Gymnasium; keyword arguments of ``make`` go to the constructor
#: (``seed``, ``scale``, ``reward``, ``temperature``, ...).
ENV_ID = "mmrf/World-v0"

if ENV_ID not in _gym.registry:
    _gym.register(
        id=ENV_ID,
        entry_point="mmrf.env:WorldEnv",
        vector_entry_point="mmrf.env:WorldVectorEnv",
    )

__all__ = [
    "ENV_ID",
    "CandidateFeatures",
    "Run",
    "World",
    "WorldEnv",
    "WorldVectorEnv",
    "ab",
    "metrics",
    "signals",
]
