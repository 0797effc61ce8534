//! Trainings side by side: each an `mmrf train` process of this same program, a few at a
//! time (the benchmark's methods, `mmrf tune`'s grid points).
//!
//! burn's random generator is process-wide, so trainings in one process must take turns;
//! in processes of their own they run on every core, and each gives the numbers it gives
//! alone: the same seed and settings, weights saved and loaded bit for bit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use mmrf_train::Method;

/// One training: what `mmrf train --method M --data D --out O --seed S --set ...` does.
#[derive(Debug, Clone)]
pub struct Training {
    pub method: Method,
    pub data: PathBuf,
    pub out: PathBuf,
    pub seed: u64,
    pub sets: Vec<String>,
    /// What the progress line calls it.
    pub label: String,
}

/// Run `trainings` in order, at most `jobs` at a time, each in its own process, with a
/// spinner per running training under `multi`'s bars; `done` is called as each finishes.
/// Returns each training's wall seconds, in `trainings`' order. The first failure stops
/// new starts and is the error, with the training's own error output.
pub fn train_all(
    trainings: &[Training],
    jobs: usize,
    multi: &indicatif::MultiProgress,
    done: &(dyn Fn() + Sync),
) -> Result<Vec<f64>> {
    let exe = std::env::current_exe().context("finding the mmrf executable to train with")?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let seconds = std::sync::Mutex::new(vec![0.0; trainings.len()]);
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.clamp(1, trainings.len().max(1)))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    use std::sync::atomic::Ordering::SeqCst;
                    while !failed.load(SeqCst) {
                        let i = next.fetch_add(1, SeqCst);
                        let Some(t) = trainings.get(i) else {
                            return Ok(());
                        };
                        let bar = spinner(multi, &t.label);
                        let start = Instant::now();
                        let outcome = train_one(&exe, t);
                        bar.finish_and_clear();
                        if outcome.is_err() {
                            failed.store(true, SeqCst);
                            return outcome;
                        }
                        seconds.lock().unwrap_or_else(|p| p.into_inner())[i] = start.elapsed().as_secs_f64();
                        done();
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a training worker panicked")))
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(seconds.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn spinner(multi: &indicatif::MultiProgress, label: &str) -> indicatif::ProgressBar {
    let bar = multi.add(indicatif::ProgressBar::new_spinner());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} train {prefix} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// One training by `exe train`; its error output is the error when it fails.
fn train_one(exe: &Path, t: &Training) -> Result<()> {
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("train")
        .arg("--method")
        .arg(t.method.name())
        .arg("--data")
        .arg(&t.data)
        .arg("--out")
        .arg(&t.out)
        .arg("--seed")
        .arg(t.seed.to_string())
        // The caller owns the output directory: a rerun replaces its runs.
        .arg("--force")
        .arg("--quiet");
    for set in &t.sets {
        cmd.arg("--set").arg(set);
    }
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("starting {} train --method {}", exe.display(), t.method.name()))?;
    if !output.status.success() {
        anyhow::bail!(
            "training {} failed ({}):\n{}",
            t.label,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(())
}
