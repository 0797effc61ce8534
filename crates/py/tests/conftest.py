import os
import pathlib
import subprocess

import pytest

import mmrf

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def small_world():
    """The small world of seed 3, in memory."""
    return mmrf.World.generate(seed=3, scale="small")


@pytest.fixture(scope="session")
def mmrf_bin():
    """The CLI built from the same sources (`cargo build --release`), or `MMRF_BIN`."""
    path = pathlib.Path(os.environ.get("MMRF_BIN", ROOT / "target" / "release" / "mmrf"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: build the CLI with `cargo build --release` or set MMRF_BIN")
    return path


@pytest.fixture(scope="session")
def small_world_dir(tmp_path_factory):
    """The small world of seed 3 written as a KuaiRand file set."""
    out = tmp_path_factory.mktemp("world") / "w"
    mmrf.World.generate(seed=3, scale="small", out=str(out))
    return out


def run(cmd):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stderr}"
    return done.stdout
