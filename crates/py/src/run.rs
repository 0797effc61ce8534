//! Trained runs from Python ([`Run`]) and the online A/B test with Python arms ([`ab`]).

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use mmrf_data::session::{Impression, RequestState};
use mmrf_data::Dataset;
use mmrf_train::{AsPolicy, Ranker};
use mmrf_world::{LoggingPolicy, MyopicOracle, Policy, RandomPolicy, SessionOracle, UserState};

use crate::world::{Observation, World};

/// A trained run of any method, loaded with the data directory it was trained on (its
/// feature space and id maps come from there).
#[pyclass(frozen, module = "mmrf._native")]
pub struct Run {
    ranker: Box<dyn Ranker>,
    data: Dataset,
    name: String,
}

impl Run {
    /// Refuse to run in `world` unless the run's data is that world's files (the check
    /// `mmrf ab` makes by loading every run with the world's data): a run scores with its
    /// own data's features and ids, which another world's users and videos do not share.
    fn check_world(&self, arm: &str, world: &World) -> PyResult<()> {
        let dir = &self.data.dir;
        let theirs = mmrf_world::World::load(dir).map_err(|e| {
            PyValueError::new_err(format!(
                "arm {arm:?}: the run's data {} is not a generated world ({e}): load the run with Run.load(run, data=WORLD_DIR)",
                dir.display()
            ))
        })?;
        if theirs.model.config != world.model.config {
            let (a, b) = (&theirs.model.config, &world.model.config);
            return Err(PyValueError::new_err(format!(
                "arm {arm:?}: the run was trained on another world ({}: seed {}, {} users) than this one (seed {}, {} users): load the run with this world's data, Run.load(run, data=WORLD_DIR)",
                dir.display(),
                a.seed,
                a.n_users,
                b.seed,
                b.n_users
            )));
        }
        Ok(())
    }

    fn dense(&self, table: &mmrf_data::table::FeatureTable, what: &str, raw: i64) -> PyResult<u32> {
        table
            .ids
            .get(raw)
            .ok_or_else(|| PyValueError::new_err(format!("{what} {raw} is not in {}", self.data.dir.display())))
    }

    /// Scores of one request, `[n_slots]`, `-inf` in the padded slots.
    #[allow(clippy::too_many_arguments)]
    fn score_one(
        &self,
        user: i64,
        time_ms: i64,
        hour: i64,
        tab: i64,
        position: i64,
        history_video: &[i64],
        history_feedback: &[f32],
        candidates: &[i64],
    ) -> PyResult<Vec<f32>> {
        let width = history_feedback.len() / history_video.len().max(1);
        if !history_video.is_empty() && (width < 8 || history_feedback.len() != history_video.len() * width) {
            return Err(PyValueError::new_err(format!(
                "history_feedback has {} values for {} impressions: expected 8 columns each",
                history_feedback.len(),
                history_video.len()
            )));
        }
        let mut history = Vec::with_capacity(history_video.len());
        for (&v, f) in history_video.iter().zip(history_feedback.chunks_exact(width.max(1))) {
            if v < 0 {
                continue;
            }
            history.push(Impression {
                video: self.dense(&self.data.videos, "video", v)?,
                play_time_ms: (f[0] * 1000.0).round().max(0.0) as u32,
                duration_ms: (f[1] * 1000.0).round().max(0.0) as u32,
                click: f[2] > 0.5,
                like: f[3] > 0.5,
                follow: f[4] > 0.5,
                comment: f[5] > 0.5,
                hate: f[6] > 0.5,
                long_view: f[7] > 0.5,
            });
        }
        let small = |name: &str, v: i64, below: i64| {
            (0..below)
                .contains(&v)
                .then_some(v)
                .ok_or_else(|| PyValueError::new_err(format!("{name} {v} must be in 0..{below}")))
        };
        let rs = RequestState {
            user: self.dense(&self.data.users, "user", user)?,
            time_ms,
            hour: small("hour", hour, 24)? as u8,
            tab: small("tab", tab, 256)? as u8,
            position: small("position", position, 1 << 16)? as u16,
            history: &history,
        };
        // -1 marks a padded slot (as in an observation); any other negative id is an error.
        if let Some(&v) = candidates.iter().find(|&&v| v < -1) {
            return Err(PyValueError::new_err(format!(
                "video {v} is not a video id (-1 marks a padded slot)"
            )));
        }
        let slots: Vec<usize> = (0..candidates.len()).filter(|&i| candidates[i] >= 0).collect();
        let dense = slots
            .iter()
            .map(|&i| self.dense(&self.data.videos, "video", candidates[i]))
            .collect::<PyResult<Vec<u32>>>()?;
        let mut scores = vec![0f32; dense.len()];
        self.ranker.score(&rs, &dense, &mut scores);
        let mut out = vec![f32::NEG_INFINITY; candidates.len()];
        for (&i, s) in slots.iter().zip(scores) {
            out[i] = s;
        }
        Ok(out)
    }
}

#[pymethods]
impl Run {
    /// The run in `run` (a directory `mmrf train` wrote), with the data directory `data`
    /// (by default the one it was trained on, as its `run.toml` records).
    #[staticmethod]
    #[pyo3(signature = (run, data = None))]
    fn load(py: Python<'_>, run: PathBuf, data: Option<PathBuf>) -> PyResult<Run> {
        py.detach(|| {
            let data = match data {
                Some(d) => d,
                None => {
                    mmrf_train::run::Manifest::read(&run)
                        .map_err(|e| PyValueError::new_err(e.to_string()))?
                        .data_dir
                }
            };
            let (ds, _) = Dataset::open(&data).map_err(|e| PyOSError::new_err(e.to_string()))?;
            let (_, ranker) = mmrf_train::load(&run, &ds).map_err(|e| PyValueError::new_err(e.to_string()))?;
            let name = run
                .file_name()
                .map_or_else(|| ranker.method().to_string(), |n| n.to_string_lossy().into_owned());
            Ok(Run { ranker, data: ds, name })
        })
    }

    /// The method (`mmrf`, `bc`, ...).
    #[getter]
    fn method(&self) -> String {
        self.ranker.method().to_string()
    }

    /// The arm name in an A/B test: the run directory's name.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Scores of `n` requests' candidates (`-inf` in padded slots, candidate `-1`), flat
    /// `[n · slots]`: the columns of `WorldEnv` observations, stacked and flattened (the
    /// Python `Run.score` passes them).
    #[allow(clippy::too_many_arguments)]
    fn score_columns<'py>(
        &self,
        py: Python<'py>,
        user: PyReadonlyArray1<'py, i64>,
        time_ms: PyReadonlyArray1<'py, i64>,
        hour: PyReadonlyArray1<'py, i64>,
        tab: PyReadonlyArray1<'py, i64>,
        position: PyReadonlyArray1<'py, i64>,
        history_video: PyReadonlyArray1<'py, i64>,
        history_feedback: PyReadonlyArray1<'py, f32>,
        candidates: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (user, time_ms, hour, tab, position) = (
            user.as_slice()?,
            time_ms.as_slice()?,
            hour.as_slice()?,
            tab.as_slice()?,
            position.as_slice()?,
        );
        let (hv, hf, cands) = (
            history_video.as_slice()?,
            history_feedback.as_slice()?,
            candidates.as_slice()?,
        );
        let n = user.len();
        if [time_ms.len(), hour.len(), tab.len(), position.len()]
            .iter()
            .any(|&l| l != n)
        {
            return Err(PyValueError::new_err(format!(
                "user, time_ms, hour, tab and position must have one value per request ({n})"
            )));
        }
        if n == 0 || hv.len() % n != 0 || hf.len() % n != 0 || cands.len() % n != 0 {
            return Err(PyValueError::new_err(format!(
                "the history and candidate columns must have the same width for each of the {n} requests"
            )));
        }
        let (h, f, c) = (hv.len() / n, hf.len() / n, cands.len() / n);
        let mut out = Vec::with_capacity(n * c);
        for r in 0..n {
            out.extend(self.score_one(
                user[r],
                time_ms[r],
                hour[r],
                tab[r],
                position[r],
                &hv[r * h..][..h],
                &hf[r * f..][..f],
                &cands[r * c..][..c],
            )?);
        }
        Ok(PyArray1::from_vec(py, out))
    }

    /// The duration in seconds of each video id in the run's data (`NaN` where the id is
    /// unknown or the data has no duration): what an observation's `candidate_duration_s`
    /// must match when it comes from the world the run was trained on.
    fn video_durations<'py>(
        &self,
        py: Python<'py>,
        videos: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let videos = videos.as_slice()?;
        let ms = match self.data.videos.column("video_duration") {
            Some(mmrf_data::table::Column::Numeric(v)) => Some(v),
            _ => None,
        };
        let out = videos
            .iter()
            .map(|&raw| match (ms, self.data.videos.ids.get(raw)) {
                (Some(ms), Some(i)) => ms[i as usize] / 1000.0,
                _ => f32::NAN,
            })
            .collect();
        Ok(PyArray1::from_vec(py, out))
    }

    fn __repr__(&self) -> String {
        format!("Run(name={:?}, method={:?})", self.name, self.ranker.method())
    }
}

/// A Python callable as a policy: called with each request's observation (the dict of
/// `WorldEnv`, one request), it returns one score per candidate slot. Called from the A/B
/// test's worker threads, each holding the GIL for the call; the first error stops the
/// calls and is raised when the test returns.
struct CallablePolicy<'w> {
    name: String,
    callable: Py<PyAny>,
    world: &'w World,
    error: Mutex<Option<PyErr>>,
}

impl Policy for CallablePolicy<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        scores.iter_mut().for_each(|s| *s = 0.0);
        let mut error = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if error.is_some() {
            return;
        }
        drop(error);
        let result = Python::attach(|py| -> PyResult<()> {
            let obs = Observation::of_request(self.world, state, candidates);
            let dict = Observation::to_dict(py, self.world, &[obs])?;
            let out = self.callable.call1(py, (dict,))?;
            let array: PyReadonlyArray1<'_, f32> = out.extract(py).map_err(|_| {
                PyValueError::new_err(format!("arm {:?} must return a float32 array of scores", self.name))
            })?;
            let values = array.as_slice()?;
            if let Some(i) = values[..values.len().min(candidates.len())]
                .iter()
                .position(|v| v.is_nan())
            {
                return Err(PyValueError::new_err(format!(
                    "arm {:?} returned a NaN score for candidate slot {i}: give a number (or -inf to never show it)",
                    self.name
                )));
            }
            if values.len() < candidates.len() {
                return Err(PyValueError::new_err(format!(
                    "arm {:?} returned {} scores for {} candidates",
                    self.name,
                    values.len(),
                    candidates.len()
                )));
            }
            scores.copy_from_slice(&values[..candidates.len()]);
            Ok(())
        });
        if let Err(e) = result {
            error = self.error.lock().unwrap_or_else(|p| p.into_inner());
            error.get_or_insert(e);
        }
    }
}

/// The world's own arms, by name.
enum Builtin<'m> {
    Logging(LoggingPolicy<'m>),
    Random(RandomPolicy),
    Oracle(MyopicOracle<'m>),
    Session(Box<SessionOracle<'m>>),
}

impl Builtin<'_> {
    fn policy(&self) -> &dyn Policy {
        match self {
            Builtin::Logging(p) => p,
            Builtin::Random(p) => p,
            Builtin::Oracle(p) => p,
            Builtin::Session(p) => p.as_ref(),
        }
    }
}

/// A named policy that reads the world's truth, by name, for the A/B test.
struct Named<'p> {
    name: String,
    inner: &'p dyn Policy,
}

impl Policy for Named<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        self.inner.score(state, candidates, scores)
    }
    fn score_in(&self, truth: &UserState, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        self.inner.score_in(truth, state, candidates, scores)
    }
    fn temperature(&self) -> Option<f32> {
        self.inner.temperature()
    }
}

/// The online A/B test of `mmrf ab` over `arms` (`(name, arm)` pairs; an arm is a
/// [`Run`], a callable, or one of the world's own: `"logging"`, `"random"`, `"oracle"`,
/// `"oracle-session"`) against the arm named `control`; returns the report as JSON.
#[pyfunction]
#[pyo3(signature = (world, arms, control, days = 7, seed = 1, users = None, bootstrap = 500))]
#[allow(clippy::too_many_arguments)]
pub fn ab(
    py: Python<'_>,
    world: Py<World>,
    arms: Vec<(String, Bound<'_, PyAny>)>,
    control: String,
    days: u32,
    seed: u64,
    users: Option<Vec<u32>>,
    bootstrap: usize,
) -> PyResult<String> {
    let world = world.get();
    let model = &world.model;
    let period = mmrf_world::test_period_days(&model.config);
    if days == 0 || days > period {
        return Err(PyValueError::new_err(format!(
            "days {days}: must be 1 to {period}, the days of the world's test period"
        )));
    }
    if bootstrap > mmrf_metrics::MAX_BOOTSTRAP {
        return Err(PyValueError::new_err(format!(
            "bootstrap {bootstrap}: at most {} resamples",
            mmrf_metrics::MAX_BOOTSTRAP
        )));
    }
    if let Some(users) = &users {
        let mut seen = std::collections::HashSet::new();
        if let Some(u) = users.iter().find(|&&u| !seen.insert(u)) {
            return Err(PyValueError::new_err(format!(
                "users: user {u} is listed twice (each user is one paired unit)"
            )));
        }
    }
    if let Some(u) = users.iter().flatten().find(|&&u| u as usize >= model.n_users()) {
        return Err(PyValueError::new_err(format!(
            "user {u} is not in this world (it has users 0..{})",
            model.n_users()
        )));
    }
    let mut names = std::collections::HashSet::new();
    if let Some((dup, _)) = arms.iter().find(|(n, _)| !names.insert(n.clone())) {
        return Err(PyValueError::new_err(format!("two arms are named {dup:?}")));
    }
    let control = arms
        .iter()
        .position(|(n, _)| *n == control)
        .ok_or_else(|| PyValueError::new_err(format!("control {control:?} is not an arm")))?;
    enum Arm<'a> {
        Run(AsPolicy<'a>),
        Builtin(Builtin<'a>),
        Callable(CallablePolicy<'a>),
    }
    let mut built = Vec::with_capacity(arms.len());
    for (name, arm) in &arms {
        built.push(if let Ok(run) = arm.cast::<Run>() {
            run.get().check_world(name, world)?;
            Arm::Run(AsPolicy::top_k(run.get().ranker.as_ref()))
        } else if let Ok(which) = arm.extract::<String>() {
            Arm::Builtin(match which.as_str() {
                "logging" => Builtin::Logging(LoggingPolicy { model }),
                "random" => Builtin::Random(RandomPolicy),
                "oracle" => Builtin::Oracle(MyopicOracle { model }),
                "oracle-session" => Builtin::Session(Box::new(SessionOracle::new(model))),
                other => {
                    return Err(PyValueError::new_err(format!(
                        "arm {name:?}: {other:?} is not one of the world's arms (\"logging\", \"random\", \"oracle\", \"oracle-session\")"
                    )))
                }
            })
        } else if arm.is_callable() {
            Arm::Callable(CallablePolicy {
                name: name.clone(),
                callable: arm.clone().unbind(),
                world,
                error: Mutex::new(None),
            })
        } else {
            return Err(PyValueError::new_err(format!(
                "arm {name:?}: expected a Run, a callable or the name of one of the world's arms"
            )));
        });
    }
    let named: Vec<Named<'_>> = built
        .iter()
        .zip(&arms)
        .map(|(a, (name, _))| Named {
            name: name.clone(),
            inner: match a {
                Arm::Run(r) => r,
                Arm::Builtin(b) => b.policy(),
                Arm::Callable(c) => c,
            },
        })
        .collect();
    let policies: Vec<&dyn Policy> = named.iter().map(|n| n as &dyn Policy).collect();
    let cfg = mmrf_eval::abtest::AbConfig {
        online: mmrf_world::OnlineConfig {
            days,
            seed,
            users,
            ..Default::default()
        },
        bootstrap,
        seed,
    };
    let report = py.detach(|| mmrf_eval::abtest::ab_test(model, &policies, control, &cfg));
    for a in &built {
        if let Arm::Callable(c) = a {
            if let Some(e) = c.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
        }
    }
    serde_json::to_string(&report).map_err(|e| PyValueError::new_err(e.to_string()))
}
