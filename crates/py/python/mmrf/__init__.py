"""mmrf from Python: the ground-truth short-video world as a Gymnasium environment, and
the offline metrics (GAUC, NCIS) of the mmrf CLI, computed by the same Rust code.

    import mmrf
    env = mmrf.WorldEnv(seed=7)
    obs, info = env.reset(seed=1)
"""

from mmrf._native import World, signals
from mmrf.env import WorldEnv, WorldVectorEnv
from mmrf import metrics

__all__ = ["World", "WorldEnv", "WorldVectorEnv", "metrics", "signals"]
