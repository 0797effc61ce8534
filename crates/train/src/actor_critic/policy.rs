//! A trained actor-critic run as a [`Ranker`]: the main actor's action scored against
//! every candidate's embedding, and the mechanism checks read off its agents.
//!
//! The same run can also rank by its WatchTime critic per item or by its WatchTime reward
//! head ([`RankBy`]): arms that say whether the actor or the critic holds a method back.

use std::path::Path;

use burn::prelude::*;
use mmrf_data::session::RequestState;
use mmrf_model::mmrf::{CriticForm, MmrfNet, N_AGENTS};
use mmrf_model::FeatureSpace;
use serde::{Deserialize, Serialize};

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

/// What a trained actor-critic run ranks a request's candidates by.
///
/// The actor is the method; the other two are diagnostics. If ranking by the critic's own
/// per-item value beats the actor, the actor fails to reproduce what its critic learned;
/// if it does not, the critic (or what it is trained on) is what holds the method back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankBy {
    /// The main actor's action against each candidate, `⟨a^N(s), e_j⟩` (the method).
    #[default]
    Actor,
    /// The WatchTime critic's value of each candidate as the one item shown,
    /// `q_N(s, e_j)`: greedy in the critic.
    CriticGreedy,
    /// The WatchTime reward head's prediction of each candidate's immediate watch,
    /// `⟨u_N(s), e_j⟩`: the myopic part of what the critic is trained on.
    RewardHead,
}

impl RankBy {
    pub const ALL: [RankBy; 3] = [RankBy::Actor, RankBy::CriticGreedy, RankBy::RewardHead];

    /// `actor`, `critic-greedy`, `reward-head`.
    pub fn name(self) -> &'static str {
        match self {
            RankBy::Actor => "actor",
            RankBy::CriticGreedy => "critic-greedy",
            RankBy::RewardHead => "reward-head",
        }
    }

    /// The ranker's name for a run of `method`: the method's own for the actor, else
    /// `METHOD-critic-greedy` or `METHOD-reward-head`.
    pub fn ranker_name(self, method: &str) -> String {
        match self {
            RankBy::Actor => method.to_string(),
            other => format!("{method}-{}", other.name()),
        }
    }
}

impl std::str::FromStr for RankBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        RankBy::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| {
            let names: Vec<&str> = RankBy::ALL.iter().map(|r| r.name()).collect();
            format!("unknown ranking '{s}' (expected one of: {})", names.join(", "))
        })
    }
}

impl std::fmt::Display for RankBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    /// The trained method (`mmrf`, `tscac`, ...).
    trained: String,
    net: MmrfNet,
    /// `[n_videos + 1, D]`: every item's embedding and a zero row for padding.
    table: Tensor<2>,
    items: Vec<f32>,
    fs: FeatureSpace,
    history: usize,
    candidates: usize,
    dim: usize,
    /// What the candidates are ranked by.
    rank_by: RankBy,
    /// The ranker's name: the trained method's, with the ranking's after it when that is not the actor.
    method: String,
    /// How much eq. 6 moved the run's simulated labels (runs with a simulator).
    pub(super) uncertainty: Option<LabelUncertainty>,
}

/// Requests per forward pass of the per-item diagnostics: the score-list critic's hidden
/// layer is `[N, B, C, hidden]`, 7 × 16 × 400 × 64 floats (11 MB) at this size.
const ITEM_PASS: usize = 16;

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
            trained: method.to_string(),
            method: method.to_string(),
            rank_by: RankBy::Actor,
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

    /// The same run ranking by `rank_by`, under [`RankBy::ranker_name`].
    pub fn ranking_by(mut self, rank_by: RankBy) -> Self {
        self.method = rank_by.ranker_name(&self.trained);
        self.rank_by = rank_by;
        self
    }

    /// What this ranker ranks by.
    pub fn rank_by(&self) -> RankBy {
        self.rank_by
    }

    /// The WatchTime critic's per-item value (`RankBy::CriticGreedy`) or reward head's
    /// prediction (`RankBy::RewardHead`) of every candidate, `scores[i]` resized to
    /// `candidates[i]`.
    fn item_values(&self, states: &[RequestState<'_>], candidates: &[&[u32]], scores: &mut [Vec<f32>]) {
        let device = mmrf_model::device::inference();
        let pad = self.fs.n_videos() as i64;
        for ((states, cands), out) in states
            .chunks(ITEM_PASS)
            .zip(candidates.chunks(ITEM_PASS))
            .zip(scores.chunks_mut(ITEM_PASS))
        {
            let (b, c) = (states.len(), cands.iter().map(|x| x.len()).max().unwrap_or(0));
            if c == 0 {
                out.iter_mut().for_each(|o| o.clear());
                continue;
            }
            let s = self.encode(states, cands);
            let idx: Vec<i64> = cands
                .iter()
                .flat_map(|x| (0..c).map(move |j| x.get(j).map_or(pad, |&v| v as i64)))
                .collect();
            let items = self
                .table
                .clone()
                .select(0, Tensor::<1, Int>::from_data(TensorData::new(idx, [b * c]), &device))
                .reshape([b, c, self.dim]);
            let main = N_AGENTS - 1;
            let values = match self.rank_by {
                RankBy::RewardHead => self
                    .net
                    .critics
                    .item_rewards(s, items)
                    .slice([0..b, 0..c, main..main + 1])
                    .reshape([b, c]),
                _ => self
                    .net
                    .critics
                    .q_items(s, items)
                    .slice([main..main + 1, 0..b, 0..c])
                    .reshape([b, c]),
            };
            let v: Vec<f32> = values.into_data().try_to_vec().unwrap_or_default();
            for (i, (x, o)) in cands.iter().zip(out.iter_mut()).enumerate() {
                o.clear();
                o.extend_from_slice(&v[i * c..i * c + x.len()]);
            }
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
        if self.rank_by != RankBy::Actor {
            return crate::ranker::score_one(self, state, candidates, scores);
        }
        let a = self.actions(std::slice::from_ref(state), &[candidates]);
        self.dot(&a, candidates, scores);
    }

    fn score_batch(&self, states: &[RequestState<'_>], candidates: &[&[u32]], scores: &mut [Vec<f32>]) {
        if self.rank_by != RankBy::Actor {
            return self.item_values(states, candidates, scores);
        }
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
        if self.net.critics.form() != CriticForm::Linear || self.rank_by != RankBy::Actor {
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
        self.uncertainty.filter(|_| self.rank_by == RankBy::Actor)
    }

    /// The main actor's ranking with its partners' actions and views taken from the next
    /// state of the batch (cyclically), against its own, as the share of candidate pairs
    /// ordered alike.
    fn collaboration_sensitivity(&self, states: &[RequestState<'_>], candidates: &[&[u32]]) -> Option<Vec<f32>> {
        let agents = &self.net.agents;
        let b = states.len();
        if !agents.talks() || b < 2 || self.rank_by != RankBy::Actor {
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
        if self.rank_by != RankBy::Actor {
            return None;
        }
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
