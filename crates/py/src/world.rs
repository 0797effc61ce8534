//! The world from Python: [`World`], one visit a request at a time ([`Episode`]), many
//! side by side ([`EpisodeBatch`]), and the observation both hand to Python.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;

use mmrf_data::session::RequestState;
use mmrf_data::Signal;
use mmrf_world::{End, Scale, WorldConfig, WorldModel};

/// Feedback columns of the history in an observation, in order.
const HISTORY_COLUMNS: [&str; 8] = [
    "play_s",
    "duration_s",
    "click",
    "like",
    "follow",
    "comment",
    "hate",
    "long_view",
];

/// A world: its ground-truth model, and the directory of its KuaiRand files if it has one.
#[pyclass(frozen, module = "mmrf._native")]
pub struct World {
    pub(crate) model: Arc<WorldModel>,
    dir: Option<PathBuf>,
    /// Most tags of any video (the width of an observation's tag array).
    pub(crate) max_tags: usize,
}

fn scale(name: &str) -> PyResult<Scale> {
    Scale::parse(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "scale {name:?}: expected \"small\", \"default\", \"1k\" or \"27k\""
        ))
    })
}

impl World {
    fn new(model: WorldModel, dir: Option<PathBuf>) -> World {
        let max_tags = model.item_tags.iter().map(Vec::len).max().unwrap_or(0);
        World {
            model: Arc::new(model),
            dir,
            max_tags,
        }
    }
}

#[pymethods]
impl World {
    /// The world of `seed` at `scale` ("small", "default", "1k" or "27k"). With `out`, its
    /// KuaiRand file set is written there as `mmrf world generate` writes it.
    #[staticmethod]
    #[pyo3(signature = (seed = 7, scale = "default", out = None))]
    fn generate(py: Python<'_>, seed: u64, scale: &str, out: Option<PathBuf>) -> PyResult<World> {
        let config = WorldConfig::new(self::scale(scale)?, seed);
        config.validate().map_err(PyValueError::new_err)?;
        py.detach(|| {
            let model = WorldModel::new(config);
            if let Some(dir) = &out {
                mmrf_world::generate(&model, dir, &|_| {}).map_err(|e| PyOSError::new_err(e.to_string()))?;
            }
            Ok(World::new(model, out))
        })
    }

    /// The world generated into `dir` (its `mmrf_world.json`, checksum verified).
    #[staticmethod]
    fn load(py: Python<'_>, dir: PathBuf) -> PyResult<World> {
        py.detach(|| {
            let world = mmrf_world::World::load(&dir).map_err(|e| match e {
                mmrf_world::WorldError::Io { .. } => PyOSError::new_err(e.to_string()),
                mmrf_world::WorldError::Invalid { .. } => PyValueError::new_err(e.to_string()),
            })?;
            Ok(World::new(world.model, Some(dir)))
        })
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.model.config.seed
    }
    #[getter]
    fn n_users(&self) -> usize {
        self.model.n_users()
    }
    #[getter]
    fn n_videos(&self) -> usize {
        self.model.n_videos()
    }
    /// Candidates per request.
    #[getter]
    fn n_candidates(&self) -> usize {
        self.model.config.n_candidates
    }
    /// Videos shown per request.
    #[getter]
    fn k(&self) -> usize {
        self.model.config.k
    }
    /// Impressions of history in an observation.
    #[getter]
    fn history_len(&self) -> usize {
        self.model.config.history_len
    }
    #[getter]
    fn max_tags(&self) -> usize {
        self.max_tags
    }
    /// The directory of its KuaiRand files, if it has one.
    #[getter]
    fn dir(&self) -> Option<PathBuf> {
        self.dir.clone()
    }
    /// The columns of an observation's `history_feedback`, in order.
    #[getter]
    fn history_columns(&self) -> Vec<&'static str> {
        HISTORY_COLUMNS.to_vec()
    }

    /// The world's latent parameters and the response model's constants, as NumPy arrays
    /// and numbers: the ground truth (what an oracle or a port of the world may read, not
    /// what an agent observes). Row-major matrices: `item_topic` `[videos, dim]`,
    /// `user_interest` `[users, dim]`, `author_topic` `[authors, dim]`, `cluster_center`
    /// `[clusters, dim]`; `cluster_items` concatenated with `cluster_offsets`.
    fn parameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.model;
        let d = PyDict::new(py);
        let dim = m.dim;
        let matrix = |v: &[f32]| PyArray1::from_vec(py, v.to_vec()).reshape([v.len() / dim, dim]);
        d.set_item("dim", dim)?;
        d.set_item("item_topic", matrix(&m.item_topic)?)?;
        d.set_item("user_interest", matrix(&m.user_interest)?)?;
        d.set_item("author_topic", matrix(&m.author_topic)?)?;
        d.set_item("cluster_center", matrix(&m.cluster_center)?)?;
        let vector = |v: &[f32]| PyArray1::from_vec(py, v.to_vec());
        for (name, v) in [
            ("item_quality", &m.item_quality),
            ("item_like_appeal", &m.item_like_appeal),
            ("item_comment_appeal", &m.item_comment_appeal),
            ("item_hate_risk", &m.item_hate_risk),
            ("item_popularity", &m.item_popularity),
            ("user_activity", &m.user_activity),
            ("user_patience", &m.user_patience),
            ("user_like", &m.user_like),
            ("user_comment", &m.user_comment),
            ("user_follow", &m.user_follow),
            ("user_hate", &m.user_hate),
            ("user_leave", &m.user_leave),
        ] {
            d.set_item(name, vector(v))?;
        }
        d.set_item("item_duration_ms", PyArray1::from_vec(py, m.item_duration_ms.clone()))?;
        d.set_item("item_author", PyArray1::from_vec(py, m.item_author.clone()))?;
        let width = self.max_tags.max(1);
        let mut tags = vec![-1i64; m.n_videos() * width];
        for (j, t) in m.item_tags.iter().enumerate() {
            for (i, &x) in t.iter().take(width).enumerate() {
                tags[j * width + i] = x as i64;
            }
        }
        d.set_item(
            "item_tags",
            PyArray1::from_vec(py, tags).reshape([m.n_videos(), width])?,
        )?;
        let mut offsets = vec![0u64];
        let mut items = Vec::new();
        for c in &m.cluster_items {
            items.extend_from_slice(c);
            offsets.push(items.len() as u64);
        }
        d.set_item("cluster_items", PyArray1::from_vec(py, items))?;
        d.set_item("cluster_offsets", PyArray1::from_vec(py, offsets))?;
        use mmrf_world::model as w;
        d.set_item("relevance_noise", w::RELEVANCE_NOISE)?;
        d.set_item("fraction_noise", w::FRACTION_NOISE)?;
        d.set_item("engagement_slope", w::ENGAGEMENT_SLOPE)?;
        d.set_item("swipe_relevance_share", w::SWIPE_RELEVANCE_SHARE)?;
        d.set_item("swipe_ms", w::SWIPE_MS)?;
        d.set_item("first_day", m.config.first_day)?;
        d.set_item("visit_hour_weight", mmrf_world::sim::HOUR_WEIGHT.to_vec())?;
        d.set_item("visit_tab_weight", mmrf_world::sim::TAB_WEIGHT.to_vec())?;
        d.set_item("max_requests_per_visit", mmrf_world::sim::MAX_REQUESTS_PER_SESSION)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "World(seed={}, users={}, videos={}, candidates={}, k={})",
            self.model.config.seed,
            self.model.n_users(),
            self.model.n_videos(),
            self.model.config.n_candidates,
            self.model.config.k
        )
    }
}

/// One request's observation as flat columns (copied out before Python sees them).
pub(crate) struct Observation {
    user: u32,
    time_ms: i64,
    hour: u8,
    tab: u8,
    position: u16,
    history_video: Vec<i64>,
    history_feedback: Vec<f32>,
    candidates: Vec<i64>,
    candidate_duration_s: Vec<f32>,
    candidate_author: Vec<i64>,
    candidate_tags: Vec<i64>,
    mask: Vec<i8>,
}

impl Observation {
    fn of(world: &World, ep: &mmrf_world::Episode) -> Observation {
        Observation::of_request(world, &ep.request(), ep.candidates())
    }

    /// The observation of a request with `cands` as its candidates.
    pub(crate) fn of_request(world: &World, rs: &RequestState<'_>, cands: &[u32]) -> Observation {
        let m = &world.model;
        let (h_len, c_len, t_len) = (m.config.history_len, m.config.n_candidates, world.max_tags);
        // History: the most recent impression last, padding (video −1) in front.
        let history = &rs.history[rs.history.len().saturating_sub(h_len)..];
        let pad = h_len - history.len();
        let mut history_video = vec![-1i64; h_len];
        let mut history_feedback = vec![0f32; h_len * HISTORY_COLUMNS.len()];
        for (i, imp) in history.iter().enumerate() {
            history_video[pad + i] = imp.video as i64;
            let row = &mut history_feedback[(pad + i) * HISTORY_COLUMNS.len()..][..HISTORY_COLUMNS.len()];
            row.copy_from_slice(&[
                imp.play_time_ms as f32 / 1000.0,
                imp.duration_ms as f32 / 1000.0,
                imp.click as u8 as f32,
                imp.like as u8 as f32,
                imp.follow as u8 as f32,
                imp.comment as u8 as f32,
                imp.hate as u8 as f32,
                imp.long_view as u8 as f32,
            ]);
        }
        let mut candidates = vec![-1i64; c_len];
        let mut candidate_duration_s = vec![0f32; c_len];
        let mut candidate_author = vec![-1i64; c_len];
        let mut candidate_tags = vec![-1i64; c_len * t_len];
        let mut mask = vec![0i8; c_len];
        for (i, &v) in cands.iter().take(c_len).enumerate() {
            let v_ = v as usize;
            candidates[i] = v as i64;
            candidate_duration_s[i] = m.item_duration_ms[v_] as f32 / 1000.0;
            candidate_author[i] = m.item_author[v_] as i64;
            for (j, &t) in m.item_tags[v_].iter().take(t_len).enumerate() {
                candidate_tags[i * t_len + j] = t as i64;
            }
            mask[i] = 1;
        }
        Observation {
            user: rs.user,
            time_ms: rs.time_ms,
            hour: rs.hour,
            tab: rs.tab,
            position: rs.position,
            history_video,
            history_feedback,
            candidates,
            candidate_duration_s,
            candidate_author,
            candidate_tags,
            mask,
        }
    }

    /// The observation as a dict of NumPy arrays; with `batch`, observations stacked.
    pub(crate) fn to_dict<'py>(py: Python<'py>, world: &World, obs: &[Observation]) -> PyResult<Bound<'py, PyDict>> {
        let m = &world.model;
        let n = obs.len();
        let (h, c, t) = (m.config.history_len, m.config.n_candidates, world.max_tags);
        let d = PyDict::new(py);
        let ints = |f: &dyn Fn(&Observation) -> i64| obs.iter().map(f).collect::<Vec<i64>>();
        d.set_item("user", PyArray1::from_vec(py, ints(&|o| o.user as i64)))?;
        // A 1-d box per observation (`[n, 1]` stacked): libraries that flatten every
        // observation (Stable-Baselines3's preprocessing) take no 0-d box.
        d.set_item("time_ms", PyArray1::from_vec(py, ints(&|o| o.time_ms)).reshape([n, 1])?)?;
        d.set_item("hour", PyArray1::from_vec(py, ints(&|o| o.hour as i64)))?;
        d.set_item("tab", PyArray1::from_vec(py, ints(&|o| o.tab as i64)))?;
        d.set_item("position", PyArray1::from_vec(py, ints(&|o| o.position as i64)))?;
        let cat_i =
            |f: &dyn Fn(&Observation) -> &Vec<i64>| obs.iter().flat_map(|o| f(o).iter().copied()).collect::<Vec<i64>>();
        let cat_f =
            |f: &dyn Fn(&Observation) -> &Vec<f32>| obs.iter().flat_map(|o| f(o).iter().copied()).collect::<Vec<f32>>();
        d.set_item(
            "history_video",
            PyArray1::from_vec(py, cat_i(&|o| &o.history_video)).reshape([n, h])?,
        )?;
        d.set_item(
            "history_feedback",
            // Row-major `(history_len, 8)` flattened: the RL libraries take 1-d boxes.
            PyArray1::from_vec(py, cat_f(&|o| &o.history_feedback)).reshape([n, h * HISTORY_COLUMNS.len()])?,
        )?;
        d.set_item(
            "candidates",
            PyArray1::from_vec(py, cat_i(&|o| &o.candidates)).reshape([n, c])?,
        )?;
        d.set_item(
            "candidate_duration_s",
            PyArray1::from_vec(py, cat_f(&|o| &o.candidate_duration_s)).reshape([n, c])?,
        )?;
        d.set_item(
            "candidate_author",
            PyArray1::from_vec(py, cat_i(&|o| &o.candidate_author)).reshape([n, c])?,
        )?;
        d.set_item(
            "candidate_tags",
            // Row-major `(n_candidates, max_tags)` flattened.
            PyArray1::from_vec(py, cat_i(&|o| &o.candidate_tags)).reshape([n, c * t])?,
        )?;
        let mask: Vec<i8> = obs.iter().flat_map(|o| o.mask.iter().copied()).collect();
        d.set_item("mask", PyArray1::from_vec(py, mask).reshape([n, c])?)?;
        Ok(d)
    }
}

/// What one step showed: per-signal totals over the viewed videos (WatchTime in
/// seconds), the viewed videos, and how the visit ended.
struct Outcome {
    totals: [f64; 7],
    viewed: Vec<i64>,
    end: Option<End>,
}

impl Outcome {
    fn of(step: &mmrf_world::env::Step<'_>) -> Outcome {
        let mut tally = mmrf_world::Tally::default();
        step.viewed.iter().for_each(|v| tally.add(&v.feedback));
        let mut totals = [0.0; 7];
        for (t, s) in totals.iter_mut().zip(Signal::ALL) {
            *t = tally.total(s);
        }
        Outcome {
            totals,
            viewed: step.viewed.iter().map(|v| v.video as i64).collect(),
            end: step.end,
        }
    }

    fn end_name(&self) -> Option<&'static str> {
        self.end.map(|e| match e {
            End::Left => "left",
            End::Cut => "cut",
        })
    }

    fn feedback<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (s, t) in Signal::ALL.iter().zip(self.totals) {
            d.set_item(s.name(), t)?;
        }
        Ok(d)
    }
}

/// One visit of one user, a request at a time.
#[pyclass(module = "mmrf._native")]
pub struct Episode {
    world: Py<World>,
    episode: Option<mmrf_world::Episode>,
}

pub(crate) fn temperature_of(t: Option<f32>) -> PyResult<Option<f32>> {
    match t {
        Some(tau) if !(tau.is_finite() && tau > 0.0) => Err(PyValueError::new_err(format!(
            "temperature {tau} must be a positive number"
        ))),
        t => Ok(t),
    }
}

#[pymethods]
impl Episode {
    #[new]
    fn new(world: Py<World>) -> Episode {
        Episode { world, episode: None }
    }

    /// Start the visit drawn by `seed` (of `user`, or of one drawn by the seed); returns
    /// the first request's observation (arrays with a leading axis of one).
    #[pyo3(signature = (seed, user = None))]
    fn reset<'py>(&mut self, py: Python<'py>, seed: u64, user: Option<u32>) -> PyResult<Bound<'py, PyDict>> {
        let world = self.world.get();
        let ep = mmrf_world::Episode::start(&world.model, seed, user).map_err(PyValueError::new_err)?;
        let obs = Observation::of(world, &ep);
        self.episode = Some(ep);
        Observation::to_dict(py, world, &[obs])
    }

    /// Show the K best of `scores` (one per candidate slot; padded slots are ignored), or
    /// with `temperature` K draws from `softmax(scores / τ)`. Returns the next
    /// observation, the feedback per signal, the viewed videos, and how the visit ended
    /// (`None`, `"left"` or `"cut"`).
    #[pyo3(signature = (scores, temperature = None))]
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        scores: PyReadonlyArray1<'py, f32>,
        temperature: Option<f32>,
    ) -> PyResult<(
        Bound<'py, PyDict>,
        Bound<'py, PyDict>,
        Bound<'py, PyArray1<i64>>,
        Option<&'static str>,
    )> {
        let world = self.world.get();
        let ep = self
            .episode
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("the episode has not started: call reset first"))?;
        let temperature = temperature_of(temperature)?;
        let scores = scores.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let n = ep.candidates().len();
        if scores.len() != world.model.config.n_candidates {
            return Err(PyValueError::new_err(format!(
                "{} scores for {} candidate slots: give one score per slot",
                scores.len(),
                world.model.config.n_candidates
            )));
        }
        let outcome = Outcome::of(
            &ep.step(&world.model, &scores[..n], temperature)
                .map_err(PyValueError::new_err)?,
        );
        let obs = Observation::of(world, ep);
        Ok((
            Observation::to_dict(py, world, &[obs])?,
            outcome.feedback(py)?,
            PyArray1::from_vec(py, outcome.viewed.clone()),
            outcome.end_name(),
        ))
    }
}

/// Many visits side by side, stepped together (in parallel, outside the GIL).
#[pyclass(module = "mmrf._native")]
pub struct EpisodeBatch {
    world: Py<World>,
    episodes: Vec<mmrf_world::Episode>,
}

#[pymethods]
impl EpisodeBatch {
    #[new]
    fn new(world: Py<World>) -> EpisodeBatch {
        EpisodeBatch {
            world,
            episodes: Vec::new(),
        }
    }

    /// Start one visit per seed; returns the stacked observations.
    fn reset<'py>(&mut self, py: Python<'py>, seeds: Vec<u64>) -> PyResult<Bound<'py, PyDict>> {
        let world = self.world.get();
        let model = &world.model;
        let (episodes, obs) = py
            .detach(|| {
                let episodes = seeds
                    .par_iter()
                    .map(|&s| mmrf_world::Episode::start(model, s, None))
                    .collect::<Result<Vec<_>, String>>()?;
                let obs: Vec<Observation> = episodes.par_iter().map(|e| Observation::of(world, e)).collect();
                Ok::<_, String>((episodes, obs))
            })
            .map_err(PyValueError::new_err)?;
        self.episodes = episodes;
        Observation::to_dict(py, world, &obs)
    }

    /// Step every visit with its row of `scores` (`[n, n_candidates]`, flattened), except
    /// the visits at `restart`, which start afresh with `seeds` instead. Returns the stacked
    /// observations, the per-signal feedback (`[n]` each; zero where not stepped) and the
    /// end of each visit (`0` going on, `1` left, `2` cut). A visit already over and not
    /// restarted is not stepped.
    #[pyo3(signature = (scores, temperature = None, restart = Vec::new(), seeds = Vec::new()))]
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        scores: PyReadonlyArray1<'py, f32>,
        temperature: Option<f32>,
        restart: Vec<usize>,
        seeds: Vec<u64>,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>, Bound<'py, PyArray1<i8>>)> {
        let world = self.world.get();
        let temperature = temperature_of(temperature)?;
        if restart.len() != seeds.len() {
            return Err(PyValueError::new_err(format!(
                "{} visits to restart with {} seeds",
                restart.len(),
                seeds.len()
            )));
        }
        let mut skip = vec![false; self.episodes.len()];
        for (&i, &s) in restart.iter().zip(&seeds) {
            let n = self.episodes.len();
            let slot = self
                .episodes
                .get_mut(i)
                .ok_or_else(|| PyValueError::new_err(format!("visit {i} is out of range for {n} visits")))?;
            *slot = mmrf_world::Episode::start(&world.model, s, None).map_err(PyValueError::new_err)?;
            skip[i] = true;
        }
        let scores = scores.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let c = world.model.config.n_candidates;
        if scores.len() != self.episodes.len() * c {
            return Err(PyValueError::new_err(format!(
                "{} scores for {} episodes of {c} candidate slots",
                scores.len(),
                self.episodes.len()
            )));
        }
        let model = &world.model;
        let episodes = &mut self.episodes;
        let (outcomes, obs) = py
            .detach(|| {
                let outcomes = episodes
                    .par_iter_mut()
                    .zip(scores.par_chunks(c))
                    .zip(&skip)
                    .map(|((ep, row), &skip)| {
                        if skip || ep.end().is_some() {
                            return Ok(None);
                        }
                        let n = ep.candidates().len();
                        ep.step(model, &row[..n], temperature).map(|s| Some(Outcome::of(&s)))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let obs: Vec<Observation> = episodes.par_iter().map(|e| Observation::of(world, e)).collect();
                Ok::<_, String>((outcomes, obs))
            })
            .map_err(PyValueError::new_err)?;
        let feedback = PyDict::new(py);
        for (k, s) in Signal::ALL.iter().enumerate() {
            let column: Vec<f64> = outcomes
                .iter()
                .map(|o| o.as_ref().map_or(0.0, |o| o.totals[k]))
                .collect();
            feedback.set_item(s.name(), PyArray1::from_vec(py, column))?;
        }
        let ends: Vec<i8> = outcomes
            .iter()
            .zip(&self.episodes)
            .map(|(o, ep)| match o.as_ref().map_or(ep.end(), |o| o.end) {
                None => 0,
                Some(End::Left) => 1,
                Some(End::Cut) => 2,
            })
            .collect();
        Ok((
            Observation::to_dict(py, world, &obs)?,
            feedback,
            PyArray1::from_vec(py, ends),
        ))
    }
}
