"""Trained runs and the A/B test from Python: the same figures as the CLI's."""

import json

import numpy as np
import pytest

import mmrf
from conftest import run


@pytest.fixture(scope="module")
def trained(mmrf_bin, small_world_dir, tmp_path_factory):
    """BC trained for one epoch on the small world, in a directory named `bc-1`."""
    out = tmp_path_factory.mktemp("runs") / "bc-1"
    run([mmrf_bin, "train", "--method", "bc", "--data", small_world_dir, "--out", out, "--set", "epochs=1", "--quiet"])
    return out


def test_a_run_scores_observations_and_acts_in_the_world(trained, small_world_dir):
    r = mmrf.Run.load(trained)  # the data directory its run.toml records
    assert (r.method, r.name) == ("bc", "bc-1")
    world = mmrf.World.load(str(small_world_dir))
    env = mmrf.WorldEnv(world)
    obs, _ = env.reset(seed=3)
    scores = r.score(obs)
    assert scores.shape == (world.n_candidates,) and scores.dtype == np.float32
    assert np.all(np.isfinite(scores[obs["mask"] == 1]))
    assert len(np.unique(scores)) > 10, "a trained model tells candidates apart"
    for _ in range(3):
        obs, _, terminated, truncated, _ = env.step(r.score(obs))
        if terminated or truncated:
            break
    # The same request given by keywords, as a user's own logs would give it.
    keywords = r.score(
        user=int(obs["user"]), candidates=obs["candidates"][obs["mask"] == 1], hour=int(obs["hour"]),
        tab=int(obs["tab"]), position=int(obs["position"]), time_ms=int(obs["time_ms"][0]),
        history_video=obs["history_video"], history_feedback=obs["history_feedback"],
    )
    assert np.array_equal(keywords, r.score(obs)[obs["mask"] == 1])
    with pytest.raises(ValueError, match="video 999999 is not in"):
        r.score(user=0, candidates=[1, 999999])
    # A stack of observations is scored row by row.
    venv = mmrf.WorldVectorEnv(3, world)
    stacked, _ = venv.reset(seed=5)
    rows = r.score(stacked)
    assert rows.shape == (3, world.n_candidates)
    for i in range(3):
        one = {k: v[i] for k, v in stacked.items()}
        assert np.array_equal(rows[i], r.score(one))


def test_the_ab_test_of_a_run_is_the_clis(trained, small_world_dir, mmrf_bin):
    cli = json.loads(run([mmrf_bin, "ab", "--data", small_world_dir, "--run", trained, "--days", "2", "--seed", "4", "--json"]))
    world = mmrf.World.load(str(small_world_dir))
    r = mmrf.Run.load(trained, small_world_dir)
    report = mmrf.ab(world, {"bc-1": r, "logging": "logging", "oracle": "oracle"}, days=2, seed=4)
    by_name = lambda rep: {a["name"]: a for a in rep["arms"]}
    ours, theirs = by_name(report), by_name(cli)
    for name in ["bc-1", "logging", "oracle"]:
        assert ours[name]["per_session"] == theirs[name]["per_session"], name
        assert ours[name]["sessions"] == theirs[name]["sessions"], name


def test_a_python_arm_that_scores_as_a_run_is_that_run(trained, small_world_dir):
    world = mmrf.World.load(str(small_world_dir))
    r = mmrf.Run.load(trained, small_world_dir)
    # The callable sees each request as WorldEnv shows it, and scores it by the run: the
    # observation carries everything the run reads, so the arms are the same policy.
    report = mmrf.ab(world, {"run": r, "python": r.score, "random": "random"}, days=1, seed=2, users=range(60))
    arms = {a["name"]: a for a in report["arms"]}
    assert arms["python"]["per_session"] == arms["run"]["per_session"]
    assert arms["python"]["per_session"] != arms["random"]["per_session"]
    assert report["control"] == "run"
    lift = dict(arms["random"]["lift"])["watch_time"]
    assert np.isfinite(lift["mean"]) and lift["ci"][0] <= lift["mean"] <= lift["ci"][1]


def test_a_run_that_is_not_there_raises_with_its_path(tmp_path):
    with pytest.raises(ValueError, match="run.toml"):
        mmrf.Run.load(tmp_path / "nothing")


def test_a_failing_arm_raises_its_own_error(small_world):
    def broken(obs):
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        mmrf.ab(small_world, {"random": "random", "broken": broken}, days=1, users=range(5))
    with pytest.raises(ValueError, match="returned 2 scores"):
        mmrf.ab(small_world, {"short": lambda obs: [0.0, 1.0]}, days=1, users=range(5))
    with pytest.raises(ValueError, match="not one of the world's arms"):
        mmrf.ab(small_world, {"x": "oracel"}, days=1)
    with pytest.raises(ValueError, match="control"):
        mmrf.ab(small_world, {"x": "random"}, control="y")
    with pytest.raises(ValueError, match="not in this world"):
        mmrf.ab(small_world, {"x": "random"}, users=[10**6])


def test_a_run_from_another_world_is_refused_by_name(trained, small_world_dir, small_world):
    r = mmrf.Run.load(trained)
    # The same world generated in memory is that world: the run plays in it.
    mmrf.ab(small_world, {"bc": r, "random": "random"}, days=1, users=[0, 1])
    other = mmrf.World.generate(seed=4, scale="small")
    with pytest.raises(ValueError, match='arm "bc-1": the run was trained on another world'):
        mmrf.ab(other, {"bc-1": r, "random": "random"}, days=1, users=[0, 1])
    # An observation of the other world is refused by run.score too; one of its own is scored.
    obs, _ = mmrf.WorldEnv(other).reset(seed=0)
    with pytest.raises(ValueError, match="the observation is not of the run's world"):
        r.score(obs)
    own, _ = mmrf.WorldEnv(small_world).reset(seed=0)
    assert np.isfinite(r.score(own)[own["mask"] == 1]).all()


def test_bad_ab_and_score_arguments_name_the_argument(trained, small_world):
    r = mmrf.Run.load(trained)
    arms = {"random": "random", "logging": "logging"}
    with pytest.raises(TypeError, match="users: expected a sequence of user ids, got int 20"):
        mmrf.ab(small_world, arms, users=20)
    with pytest.raises(ValueError, match="users: user 1 is listed twice"):
        mmrf.ab(small_world, arms, users=[1, 1, 1])
    with pytest.raises(ValueError, match="users: 1.5 is not a user id"):
        mmrf.ab(small_world, arms, users=[1.5])
    with pytest.raises(ValueError, match="days 40: must be 1 to 17"):
        mmrf.ab(small_world, arms, users=[1], days=40)
    with pytest.raises(ValueError, match="bootstrap 1000000000000: at most 100000"):
        mmrf.ab(small_world, arms, users=[1], days=1, bootstrap=10**12)

    def nan_arm(obs):
        s = np.zeros(len(obs["candidates"]), dtype=np.float32)
        s[2] = np.nan
        return s

    with pytest.raises(ValueError, match='arm "nan" returned a NaN score for candidate slot 2'):
        mmrf.ab(small_world, {"nan": nan_arm, "random": "random"}, users=[0], days=1)
    with pytest.raises(ValueError, match=r"video -7 is not a video id \(-1 marks a padded slot\)"):
        r.score(user=0, candidates=[1, -7])
    # -1 is a padded slot, as in an observation.
    assert r.score(user=0, candidates=[1, -1])[1] == -np.inf
    env = mmrf.WorldEnv(small_world)
    with pytest.raises(ValueError, match="user -1 is not in this world"):
        env.reset(seed=0, options={"user": -1})
    with pytest.raises(ValueError, match="user 100000 is not in this world"):
        mmrf.WorldEnv(small_world, user=100_000)
