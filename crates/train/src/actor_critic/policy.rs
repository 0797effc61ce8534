//! A trained actor-critic run as a [`Ranker`]: the main actor's action scored against
//! every candidate's embedding, and the mechanism checks read off its agents.

use std::path::Path;

use burn::prelude::*;
use mmrf_data::session::RequestState;
use mmrf_model::mmrf::{CriticForm, MmrfNet, N_AGENTS};
use mmrf_model::FeatureSpace;

use super::config::ActorCriticConfig;
use super::simulator::{SimulatorFit, SIMULATOR_FIT_FILE};
use crate::batch::video_batch;
use crate::ranker::{LabelUncertainty, Ranker};
use crate::run::{self, Manifest};
use crate::state::StateInputs;
use crate::TrainError;

/// A plain-Rust copy of every item's embedding (for picking non-impression samples).
pub(super) fn item_table(net: &MmrfNet, fs: &FeatureSpace) -> Vec<f32> {
    let device = mmrf_model::device::inference();
    let items = net.items.valid();
    let all: Vec<u32> = (0..fs.n_videos() as u32).collect();
    let mut out = Vec::with_capacity(all.len() * 32);
    for chunk in all.chunks(8192) {
        let e = items.forward(video_batch(fs, chunk, &device));
        out.extend(e.into_data().try_to_vec::<f32>().unwrap_or_default());
    }
    out
}

/// Load an MMRF run.
pub fn load(dir: &Path, manifest: &Manifest, fs: &FeatureSpace) -> Result<ActorRanker, TrainError> {
    let cfg: ActorCriticConfig = manifest.config()?;
    let device = mmrf_model::device::inference();
    let net = run::load_module(
        || MmrfNet::new(&fs.shape(), &cfg.net, &device),
        &dir.join(run::WEIGHTS_FILE),
    )?;
    let mut ranker = ActorRanker::new(&manifest.method, net, fs.clone(), cfg.history, cfg.net.candidates);
    // The simulator's fit, when the run has one, says how much eq. 6 moved its labels.
    let fit_path = dir.join(SIMULATOR_FIT_FILE);
    if fit_path.exists() {
        let text = std::fs::read_to_string(&fit_path).map_err(|e| TrainError::io(&fit_path, e))?;
        let fit: SimulatorFit =
            serde_json::from_str(&text).map_err(|e| TrainError::Run(format!("{}: {e}", fit_path.display())))?;
        ranker.uncertainty = fit.uncertainty;
    }
    Ok(ranker)
}

/// A trained MMRF as a [`Ranker`]: the main (WatchTime) agent's action for the state,
/// scored against every candidate's embedding.
pub struct ActorRanker {
    method: String,
    net: MmrfNet,
    /// `[n_videos + 1, D]`: every item's embedding and a zero row for padding.
    table: Tensor<2>,
    items: Vec<f32>,
    fs: FeatureSpace,
    history: usize,
    candidates: usize,
    dim: usize,
    /// How much eq. 6 moved the run's simulated labels (runs with a simulator).
    pub(super) uncertainty: Option<LabelUncertainty>,
}

impl ActorRanker {
    pub fn new(method: &str, net: MmrfNet, fs: FeatureSpace, history: usize, candidates: usize) -> Self {
        let device = mmrf_model::device::inference();
        let items = item_table(&net, &fs);
        let n = fs.n_videos();
        let dim = items.len() / n.max(1);
        let mut padded = items.clone();
        padded.extend(std::iter::repeat_n(0.0, dim));
        let table = Tensor::from_data(TensorData::new(padded, [n + 1, dim]), &device);
        ActorRanker {
            method: method.to_string(),
            net,
            table,
            items,
            fs,
            history,
            candidates,
            dim,
            uncertainty: None,
        }
    }

    /// States `[B, S]`; `candidates[i]` are state `i`'s (read when the network reads them).
    fn encode(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Tensor<2> {
        assert_eq!(states.len(), candidates.len(), "one candidate list per state");
        let device = mmrf_model::device::inference();
        let mut inputs = StateInputs::with_candidates(self.history, self.candidates);
        for (s, c) in states.iter().zip(candidates) {
            inputs.push(&self.fs, s);
            inputs.push_candidates(c);
        }
        let n = self.fs.n_videos() as i64;
        let batch = inputs.to_batch(self.fs.users.dim, self.table.clone(), |v| v as i64, n, &device);
        self.net.state.forward(batch)
    }

    /// The main agent's actions `[B × D]` for states and their candidates.
    pub fn actions(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Vec<f32> {
        let s = self.encode(states, candidates);
        self.net
            .agents
            .main_action(s)
            .into_data()
            .try_to_vec()
            .unwrap_or_default()
    }

    /// `out[j] = ⟨a, e_{candidates[j]}⟩`.
    fn dot(&self, a: &[f32], candidates: &[u32], out: &mut [f32]) {
        let d = self.dim;
        for (s, &c) in out.iter_mut().zip(candidates) {
            let e = &self.items[c as usize * d..(c as usize + 1) * d];
            *s = a.iter().zip(e).map(|(x, y)| x * y).sum::<f32>();
        }
    }
}

impl Ranker for ActorRanker {
    fn method(&self) -> &str {
        &self.method
    }

    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        let a = self.actions(std::slice::from_ref(state), &[candidates]);
        self.dot(&a, candidates, scores);
    }

    fn score_batch(&self, states: &[RequestState<'_>], candidates: &[&[u32]], scores: &mut [Vec<f32>]) {
        let a = self.actions(states, candidates);
        let d = self.dim;
        for (i, (cands, out)) in candidates.iter().zip(scores.iter_mut()).enumerate() {
            out.resize(cands.len(), 0.0);
            self.dot(&a[i * d..(i + 1) * d], cands, out);
        }
    }

    /// The cosine of the main action to `W_N(s)/|W_N(s)|`, its critic's best unit action,
    /// for the linear critic (the score-list critic has no closed-form best action). Training logs it on its own batches
    /// (`main_actor_alignment`); this reads it on any states, held-out or online.
    fn critic_alignment(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Option<Vec<f32>> {
        if self.net.critics.form() != CriticForm::Linear {
            return None;
        }
        let s = self.encode(states, candidates);
        let a = self.net.agents.main_action(s.clone());
        let w = self.net.critics.action_gradients(s);
        let [n, b, d] = w.dims();
        let best = mmrf_model::mmrf::unit(w.slice([n - 1..n, 0..b, 0..d]).reshape([b, d]));
        (a * best).sum_dim(1).reshape([b]).into_data().try_to_vec().ok()
    }

    fn label_uncertainty(&self) -> Option<LabelUncertainty> {
        self.uncertainty
    }

    /// The main actor's ranking with its partners' actions and views taken from the next
    /// state of the batch (cyclically), against its own, as the share of candidate pairs
    /// ordered alike.
    fn collaboration_sensitivity(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Option<Vec<f32>> {
        let agents = &self.net.agents;
        let b = states.len();
        if !agents.talks() || b < 2 {
            return None;
        }
        let device = mmrf_model::device::inference();
        let s = self.encode(states, candidates);
        let h = agents.embeddings(s);
        let e = agents.collaborate(h.clone());
        let a = agents.actions(h.clone(), e.clone(), 1.0);
        let [n, _, d] = a.dims();
        let hd = h.dims()[2];
        let own = a.clone().slice([n - 1..n, 0..b, 0..d]).reshape([b, d]);
        let shift: Vec<i64> = (0..b).map(|i| ((i + 1) % b) as i64).collect();
        let shift = Tensor::<1, Int>::from_data(TensorData::new(shift, [b]), &device);
        let h_main = h.slice([0..b, n - 1..n, 0..hd]).reshape([b, hd]);
        let other = agents.main_from(
            h_main,
            e.select(0, shift.clone()),
            a.slice([0..n - 1, 0..b, 0..d]).select(1, shift),
        );
        let (own, other): (Vec<f32>, Vec<f32>) =
            (own.into_data().try_to_vec().ok()?, other.into_data().try_to_vec().ok()?);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        Some(
            (0..b)
                .map(|i| {
                    x.resize(candidates[i].len(), 0.0);
                    y.resize(candidates[i].len(), 0.0);
                    self.dot(&own[i * d..(i + 1) * d], candidates[i], &mut x);
                    self.dot(&other[i * d..(i + 1) * d], candidates[i], &mut y);
                    crate::ranker::pair_agreement(&x, &y)
                })
                .collect(),
        )
    }

    /// Every agent's action scored against the candidates (the last agent's scores are
    /// the ranking scores).
    fn agent_scores(&self, state: &RequestState<'_>, candidates: &[u32]) -> Option<Vec<Vec<f32>>> {
        let s = self.encode(std::slice::from_ref(state), &[candidates]);
        let h = self.net.agents.embeddings(s);
        let e = self.net.agents.collaborate(h.clone());
        let a: Vec<f32> = self.net.agents.actions(h, e, 1.0).into_data().try_to_vec().ok()?; // [N, 1, D]
        let d = self.dim;
        let scores = (0..N_AGENTS)
            .map(|i| {
                let mut out = vec![0.0; candidates.len()];
                self.dot(&a[i * d..(i + 1) * d], candidates, &mut out);
                out
            })
            .collect();
        Some(scores)
    }
}
