"""mmrf from Python: the ground-truth short-video world as a Gymnasium environment, the
offline metrics (GAUC, NCIS), trained runs and the online A/B test of the mmrf CLI,
computed by the same Rust code.

    import mmrf
    env = mmrf.WorldEnv(seed=7)
    obs, info = env.reset(seed=1)
"""

from mmrf._native import World, signals
from mmrf.env import WorldEnv, WorldVectorEnv
from mmrf.run import Run, ab
from mmrf import metrics

__all__ = ["Run", "World", "WorldEnv", "WorldVectorEnv", "ab", "metrics", "signals"]
