//! The Python suite (`tests/test_*.py`) against the wheel built from this crate.
//!
//! A virtual environment under the target directory gets the wheel's dependencies, maturin
//! and pytest from the package index, then the wheel `maturin build` makes of this crate;
//! pytest runs there, its output straight to the terminal (its count of tests shows in
//! the test command's output), and this test fails when it does.
//!
//! `MMRF_PYTHON` chooses the interpreter the environment is made from (default `python3`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Run `cmd` with its output on the terminal; panic with `what` if it fails.
fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("{what}: could not start {:?}: {e}", cmd.get_program()));
    assert!(status.success(), "{what} failed ({status})");
}

#[test]
fn the_python_suite_passes_against_the_built_wheel() {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let venv = target.join("py-venv");
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let base = std::env::var("MMRF_PYTHON").unwrap_or_else(|_| "python3".into());
        run(
            Command::new(&base).arg("-m").arg("venv").arg(&venv),
            "creating the virtual environment",
        );
    }
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "maturin>=1.9,<2",
            "numpy>=1.21",
            "gymnasium>=1.0",
            "pytest>=7",
        ]),
        "installing maturin, numpy, gymnasium and pytest",
    );
    let wheels = target.join("wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    run(
        Command::new(venv.join("bin").join("maturin"))
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(root.join("crates/py/Cargo.toml"))
            .arg("--out")
            .arg(&wheels)
            .env("CARGO_TARGET_DIR", &target),
        "building the wheel",
    );
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("maturin wrote no wheel");
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(&wheel),
        "installing the wheel",
    );
    run(
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(root.join("crates/py/tests"))
            .env("MMRF_BIN", target.join("release").join("mmrf"))
            .current_dir(root.join("crates/py/tests")),
        "the Python suite",
    );
}
