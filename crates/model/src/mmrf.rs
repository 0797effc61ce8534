//! MMRF's networks (paper §2, `DESIGN.md` §5): item and state encoders, N = 7 agents with
//! attentive collaboration, their actors and critics.
//!
//! Shapes: `B` requests, `N` agents (agent `N-1`, the last, maximises WatchTime), `S` state
//! width, `H` agent width, `D` action / item-embedding width.
//!
//! - [`ItemEncoder`]: video id, author, first tag and features → a unit vector `e_j ∈ R^D`.
//! - [`StateEncoder`]: user id and profile, the last L impressions (item embedding and
//!   feedback vector, masked mean after a layer), the request context (hour, tab,
//!   position) and, when `candidates` asks for them, a subset of the request's candidates
//!   (masked mean after a layer) → `s ∈ R^S`.
//! - [`Agents`]: `h^i = ReLU(W_i s)` for all agents at once (one matmul); collaboration
//!   `e^i = Σ_{j≠i} α_ij ReLU(W_o h^j)`, `α_ij ∝ exp(h^j·W_kᵀW_q h^i)` per head, with
//!   `W_q, W_k, W_o` shared by all agents (eq. 1) — or, for the MMRF-CO ablation, a shared
//!   projection of the concatenated other embeddings; auxiliary actors `a^k = f_k(h^k, e^k)`
//!   (eq. 2) batched over agents; the main actor `a^N = f_N(h^N, e, a^1..a^{N-1})` (eq. 3),
//!   which reads every agent's view `e = [e^1..e^N]`, not only its own.
//!   Actions are unit vectors; a candidate's score is `⟨a^N, e_j⟩`.
//! - [`Critics`]: `Q_i(s, a^i)` for all agents at once, plus per-agent reward heads
//!   `r̂_ij = ⟨u_i(s), e_j⟩` that predict each shown item's feedback (a representation loss
//!   that ties the item space to what users do).
//!
//! Per-agent layers are [`BatchedLinear`]: one `[N, in, out]` weight and one batched matmul
//! instead of a loop over agents.

use burn::module::Param;
use burn::nn::{Embedding, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use crate::bc::VideoBatch;
use crate::features::FeatureShape;
use crate::layers::{embedding, linear_rows, lookup};

/// Number of agents: Click, Like, Follow, Comment, Hate, LongView, WatchTime.
pub const N_AGENTS: usize = 7;
/// Length of the feedback vector of a history impression (the seven signals, scaled).
pub const FEEDBACK_DIM: usize = 7;
/// Tabs the context embedding knows (KuaiRand uses 0..14; larger values share the last).
pub const N_TABS: usize = 16;

/// How agents share information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Collaboration {
    /// Multi-head attention over the other agents' embeddings (eq. 1).
    Attention,
    /// MMRF-CO: a shared projection of the concatenated other embeddings.
    Concat,
    /// No communication between actors (Pareto, TSCAC, MASSA): each agent sees only its
    /// own embedding, and the main actor does not read the auxiliary actions.
    None,
}

/// The critics' form (see [`Critics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CriticForm {
    /// `q_i(s, e) = c_i(s) + ⟨W_i(s), e⟩`: linear in the item, so the best unit action
    /// is the closed form `W_i(s)/|W_i(s)|`.
    #[default]
    Linear,
    /// The paper's critic of a score list: `q_i(s, e)` nonlinear in the item, and an
    /// action valued by the ranking it induces over the request's real candidates,
    /// `Q_i(s, a) = Σ_j softmax_j(⟨a, e_j⟩/τ) q_i(s, e_j)`. No closed-form best action.
    List,
}

/// Sizes of MMRF's networks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmrfNetConfig {
    /// `D`: action and item-embedding width.
    pub dim: usize,
    /// `S`: state width.
    pub state: usize,
    /// `H`: agent embedding width.
    pub agent: usize,
    /// Attention heads (must divide `agent`).
    pub heads: usize,
    /// Hidden width of actors and critics.
    pub hidden: usize,
    pub collaboration: Collaboration,
    /// MASSA's signal network in the critics (see [`Critics`]).
    #[serde(default)]
    pub critic_signal: bool,
    /// Candidates of the request read into the state: an evenly spaced subset of this many
    /// (`DESIGN.md` §3's "candidate item features"), pooled like the history. 0 (the
    /// default): none. On worlds 7–12 reading 32 moved MMRF's figures only within
    /// retraining's spread and cost 21 % more training time (README); on logs whose
    /// candidate sets say more about the moment than the user's history does, it may not.
    #[serde(default)]
    pub candidates: usize,
    /// The critics' form: the score list for MMRF and its ablations (on worlds 7–9 it
    /// ran more session WatchTime than the linear form on each world, `docs/mmrf.md`);
    /// the actor-critic baselines keep the linear form their settings were tuned with.
    /// Runs trained before this setting existed read as linear.
    #[serde(default)]
    pub critic: CriticForm,
    /// A state-value head per agent, `V_i(s)`: the value of the rest of the session from a
    /// request on. With it, the per-item critics bootstrap from the value of the whole next
    /// request (`q_i(s, e) = r_i + γ·[stayed]·V_i(s')`), so an item's effect on the user
    /// staying counts at its size, not at one item's share of the next slate. Runs trained
    /// before this setting existed read as without it.
    #[serde(default)]
    pub session_value: bool,
}

impl Default for MmrfNetConfig {
    fn default() -> Self {
        MmrfNetConfig {
            dim: 32,
            state: 64,
            agent: 32,
            heads: 4,
            hidden: 64,
            collaboration: Collaboration::Attention,
            critic_signal: false,
            candidates: 0,
            critic: CriticForm::List,
            session_value: false,
        }
    }
}

pub use crate::layers::square;

/// Scale rows to unit length (a small floor keeps the gradient finite at zero).
pub fn unit<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = square(x.clone()).sum_dim(D - 1).add_scalar(1e-8).sqrt();
    x / norm
}

/// `N` independent linear layers applied with one batched matmul: `[N, B, in] → [N, B, out]`.
#[derive(Module, Debug)]
pub struct BatchedLinear {
    pub weight: Param<Tensor<3>>,
    pub bias: Param<Tensor<3>>,
}

impl BatchedLinear {
    pub fn new(n: usize, input: usize, output: usize, device: &Device) -> Self {
        // PyTorch's default for Linear: U(-1/√in, 1/√in) for weights and biases.
        let k = 1.0 / (input.max(1) as f64).sqrt();
        BatchedLinear {
            weight: Param::from_tensor(Tensor::random([n, input, output], Distribution::Uniform(-k, k), device)),
            bias: Param::from_tensor(Tensor::random([n, 1, output], Distribution::Uniform(-k, k), device)),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        x.matmul(self.weight.val()) + self.bias.val()
    }
}

/// Video → unit embedding `e_j`.
#[derive(Module, Debug)]
pub struct ItemEncoder {
    id: Embedding,
    author: Embedding,
    tag: Embedding,
    features: Linear,
    out: Linear,
}

impl ItemEncoder {
    pub fn new(shape: &FeatureShape, cfg: &MmrfNetConfig, device: &Device) -> Self {
        let h = cfg.hidden;
        ItemEncoder {
            id: embedding(shape.n_videos, h, device),
            author: embedding(shape.n_authors, h, device),
            tag: embedding(shape.n_tags, h, device),
            features: LinearConfig::new(shape.video_dim.max(1), h).init(device),
            out: LinearConfig::new(h, cfg.dim).init(device),
        }
    }

    /// `[M, D]` unit vectors.
    pub fn forward(&self, v: VideoBatch) -> Tensor<2> {
        let h = lookup(&self.id, v.ids)
            + lookup(&self.author, v.authors)
            + lookup(&self.tag, v.tags)
            + self.features.forward(v.features);
        unit(self.out.forward(relu(h)))
    }
}

/// A batch of request states as the state encoder reads them.
#[derive(Debug, Clone)]
pub struct StateBatch {
    /// `[B]`.
    pub users: Tensor<1, Int>,
    /// `[B, user_dim]`.
    pub user_features: Tensor<2>,
    /// `[B, L, D]` embeddings of the history items (oldest first, zero padding).
    pub history: Tensor<3>,
    /// `[B, L, FEEDBACK_DIM]`.
    pub feedback: Tensor<3>,
    /// `[B, L]` 1 for a real impression, 0 for padding.
    pub mask: Tensor<2>,
    /// `[B]` hour 0..24.
    pub hour: Tensor<1, Int>,
    /// `[B]` tab 0..N_TABS.
    pub tab: Tensor<1, Int>,
    /// `[B, 1]` `ln(1 + position in session)`.
    pub position: Tensor<2>,
    /// `[B, M, D]` embeddings of a subset of the request's candidates (zero padding).
    pub candidates: Tensor<3>,
    /// `[B, M]` 1 for a real candidate, 0 for padding.
    pub candidate_mask: Tensor<2>,
}

/// Request state → `s ∈ R^S`.
#[derive(Module, Debug)]
pub struct StateEncoder {
    user_id: Embedding,
    user_features: Linear,
    history: Linear,
    hour: Embedding,
    tab: Embedding,
    position: Linear,
    candidates: Option<Linear>,
    out: Linear,
}

impl StateEncoder {
    pub fn new(shape: &FeatureShape, cfg: &MmrfNetConfig, device: &Device) -> Self {
        let s = cfg.state;
        StateEncoder {
            user_id: embedding(shape.n_users, s, device),
            user_features: LinearConfig::new(shape.user_dim.max(1), s).init(device),
            history: LinearConfig::new(cfg.dim + FEEDBACK_DIM, s).init(device),
            hour: embedding(24, s, device),
            tab: embedding(N_TABS, s, device),
            position: LinearConfig::new(1, s).init(device),
            candidates: (cfg.candidates > 0).then(|| LinearConfig::new(cfg.dim, s).init(device)),
            out: LinearConfig::new(s, s).init(device),
        }
    }

    pub fn forward(&self, x: StateBatch) -> Tensor<2> {
        let [b, l, _] = x.history.dims();
        let per_item = relu(linear_rows(&self.history, Tensor::cat(vec![x.history, x.feedback], 2)));
        let s_dim = per_item.dims()[2];
        let mask = x.mask.reshape([b, l, 1]);
        let count = mask.clone().sum_dim(1).reshape([b, 1]).clamp_min(1.0);
        let pooled = (per_item * mask).sum_dim(1).reshape([b, s_dim]) / count;
        let pooled = match &self.candidates {
            Some(layer) => {
                let m = x.candidates.dims()[1];
                let per_cand = relu(linear_rows(layer, x.candidates));
                let cmask = x.candidate_mask.reshape([b, m, 1]);
                let ccount = cmask.clone().sum_dim(1).reshape([b, 1]).clamp_min(1.0);
                pooled + (per_cand * cmask).sum_dim(1).reshape([b, s_dim]) / ccount
            }
            None => pooled,
        };
        let h = lookup(&self.user_id, x.users)
            + self.user_features.forward(x.user_features)
            + pooled
            + lookup(&self.hour, x.hour)
            + lookup(&self.tab, x.tab)
            + self.position.forward(x.position);
        relu(self.out.forward(relu(h)))
    }
}

/// Eq. 1's projections, shared by all agents.
#[derive(Module, Debug)]
pub struct SharedAttention {
    w_q: Linear,
    w_k: Linear,
    w_o: Linear,
}

/// Width of the main actor's input `[h^N, e, a^1..a^{N-1}]`: with communication `e` is every
/// agent's view `[e^1..e^N]` (eq. 3); without it, the one (zero) view of the main agent.
fn main_input(cfg: &MmrfNetConfig) -> usize {
    let views = if cfg.collaboration == Collaboration::None {
        1
    } else {
        N_AGENTS
    };
    cfg.agent * (1 + views) + (N_AGENTS - 1) * cfg.dim
}

/// The N agents: state embeddings, collaboration, actors.
#[derive(Module, Debug)]
pub struct Agents {
    embed: Linear,
    /// Present with [`Collaboration::Attention`].
    attention: Option<SharedAttention>,
    /// Present with [`Collaboration::Concat`] (MMRF-CO).
    concat: Option<Linear>,
    aux_hidden: BatchedLinear,
    aux_out: BatchedLinear,
    main_hidden: Linear,
    main_out: Linear,
    heads: usize,
    agent: usize,
    /// Whether actors communicate (attention or concatenation).
    talks: bool,
}

impl Agents {
    pub fn new(cfg: &MmrfNetConfig, device: &Device) -> Self {
        let (n, h, d) = (N_AGENTS, cfg.agent, cfg.dim);
        Agents {
            embed: LinearConfig::new(cfg.state, n * h).init(device),
            attention: (cfg.collaboration == Collaboration::Attention).then(|| SharedAttention {
                w_q: LinearConfig::new(h, h).with_bias(false).init(device),
                w_k: LinearConfig::new(h, h).with_bias(false).init(device),
                w_o: LinearConfig::new(h, h).init(device),
            }),
            concat: (cfg.collaboration == Collaboration::Concat)
                .then(|| LinearConfig::new((n - 1) * h, h).init(device)),
            aux_hidden: BatchedLinear::new(n - 1, 2 * h, cfg.hidden, device),
            aux_out: BatchedLinear::new(n - 1, cfg.hidden, d, device),
            main_hidden: LinearConfig::new(main_input(cfg), cfg.hidden).init(device),
            main_out: LinearConfig::new(cfg.hidden, d).init(device),
            heads: cfg.heads.max(1),
            agent: h,
            talks: cfg.collaboration != Collaboration::None,
        }
    }

    /// `h`: `[B, N, H]`.
    pub fn embeddings(&self, s: Tensor<2>) -> Tensor<3> {
        let b = s.dims()[0];
        relu(self.embed.forward(s)).reshape([b, N_AGENTS, self.agent])
    }

    /// `e`: `[B, N, H]`, each agent's view of the others.
    pub fn collaborate(&self, h: Tensor<3>) -> Tensor<3> {
        let [b, n, hd] = h.dims();
        if let Some(concat) = &self.concat {
            // MMRF-CO: agent i reads the concatenation of the others, in agent order.
            let views: Vec<Tensor<2>> = (0..n)
                .map(|i| {
                    let others: Vec<Tensor<3>> = (0..n)
                        .filter(|&j| j != i)
                        .map(|j| h.clone().slice([0..b, j..j + 1, 0..hd]))
                        .collect();
                    relu(concat.forward(Tensor::cat(others, 1).reshape([b, (n - 1) * hd])))
                })
                .collect();
            return Tensor::stack(views, 1);
        }
        let Some(att) = &self.attention else {
            return h.zeros_like();
        };
        let (heads, dk) = (self.heads, hd / self.heads);
        let split = |x: Tensor<3>| x.reshape([b, n, heads, dk]).swap_dims(1, 2); // [B, heads, N, dk]
        let q = split(linear_rows(&att.w_q, h.clone()));
        let k = split(linear_rows(&att.w_k, h.clone()));
        let v = split(relu(linear_rows(&att.w_o, h)));
        let logits = q.matmul(k.swap_dims(2, 3)) / (dk as f64).sqrt(); // [B, heads, N(i), N(j)]
                                                                       // j ≠ i: an agent attends only to the others.
        let eye = Tensor::<2>::eye(n, &logits.device()).reshape([1, 1, n, n]);
        let alpha = softmax(logits - eye * 1e9, 3);
        alpha.matmul(v).swap_dims(1, 2).reshape([b, n, hd])
    }

    /// Unit actions `[N, B, D]`: auxiliary agents first, the main (WatchTime) agent last.
    /// `main_grad` scales how much of the main actor's gradient flows back into the
    /// auxiliary actors through their actions (α_θ of eq. 4; 1 = all of it).
    pub fn actions(&self, h: Tensor<3>, e: Tensor<3>, main_grad: f64) -> Tensor<3> {
        let [b, n, hd] = h.dims();
        let aux_in = Tensor::cat(vec![h.clone(), e.clone()], 2) // [B, N, 2H]
            .slice([0..b, 0..n - 1, 0..2 * hd])
            .swap_dims(0, 1); // [N-1, B, 2H]
        let aux = unit(self.aux_out.forward(relu(self.aux_hidden.forward(aux_in)))); // [N-1, B, D]
        let d = aux.dims()[2];
        let h_main = h.slice([0..b, n - 1..n, 0..hd]).reshape([b, hd]);
        let aux_for_main = aux.clone() * main_grad + aux.clone().detach() * (1.0 - main_grad);
        let main = self.main_from(h_main, e, aux_for_main).reshape([1, b, d]);
        Tensor::cat(vec![aux, main], 0)
    }

    /// The main actor alone, `[B, D]`: from its own embedding `h^N` `[B, H]`, every agent's
    /// view `e` `[B, N, H]` and the auxiliary actions `[N-1, B, D]` (eq. 3). Apart from
    /// [`Self::actions`], it lets a diagnostic hand the main actor its partners from other
    /// states.
    pub fn main_from(&self, h_main: Tensor<2>, e: Tensor<3>, aux: Tensor<3>) -> Tensor<2> {
        let [b, n, hd] = e.dims();
        let d = aux.dims()[2];
        let main_in = if self.talks {
            // Eq. 3: every agent's view e = [e^1..e^N] and the auxiliary actions.
            Tensor::cat(
                vec![
                    h_main,
                    e.reshape([b, n * hd]),
                    aux.swap_dims(0, 1).reshape([b, (n - 1) * d]),
                ],
                1,
            )
        } else {
            // Without communication the main actor's view and auxiliary inputs are zero: the
            // same network shape, and nothing of the other actors reaches it.
            Tensor::cat(vec![h_main, Tensor::zeros([b, hd + (n - 1) * d], &aux.device())], 1)
        };
        unit(self.main_out.forward(relu(self.main_hidden.forward(main_in))))
    }

    /// Whether the actors communicate (attention or concatenation).
    pub fn talks(&self) -> bool {
        self.talks
    }

    /// The main agent's action `[B, D]` from a state.
    pub fn main_action(&self, s: Tensor<2>) -> Tensor<2> {
        let b = s.dims()[0];
        let h = self.embeddings(s);
        let e = self.collaborate(h.clone());
        let a = self.actions(h, e, 1.0);
        let d = a.dims()[2];
        a.slice([N_AGENTS - 1..N_AGENTS, 0..b, 0..d]).reshape([b, d])
    }
}

/// The agents' critics `Q_i(s, a^i)` and reward heads.
///
/// A request's return is a sum over its K shown items, so each critic is kept in the
/// per-item (slate-decomposed) form `q_i(s, e) = c_i(s) + ⟨W_i(s), e⟩`, linear in the
/// item or action vector: the slate's value is `Σ_k q_i(s, e_k)`, the TD error is taken per
/// shown item (its own reward plus the discounted value of the next request), the action
/// that maximises `Q_i(s, a) = q_i(s, a)` among unit vectors is explicit, and a candidate's
/// score `⟨a, e_j⟩` ranks by the same per-item value the critic learned. (An unconstrained
/// `MLP(s, a)` critic trained only on logged actions extrapolates freely off them; offline,
/// its maximiser can point anywhere.)
///
/// With [`CriticForm::List`] the per-item value is nonlinear in the item,
/// `q_i(s, e) = w_iᵀ ReLU(T_i(s) + G([e, u(s) ⊙ e])) + b_i` ([`ListCritic`]), and an action
/// is valued by the score list it induces over a request's candidates ([`Critics::q_list`]):
/// its best action depends on which candidates there are, so the actors must learn it.
///
/// With MASSA's signal network (`critic_signal`), each critic's hidden layer also receives a
/// mix of all critics' messages `m_j = W_m t_j`, mixed per state by a signal network:
/// `t_i ← ReLU(t_i + Σ_j σ_ij(s) m_j)`, `σ_i· = softmax(W_σ s)_i`.
#[derive(Module, Debug)]
pub struct Critics {
    trunk: BatchedLinear,
    value: BatchedLinear,
    advantage: BatchedLinear,
    reward: Linear,
    signal: Option<CriticSignal>,
    /// Present with [`CriticForm::List`]: the per-item values come from it.
    list: Option<ListCritic>,
    /// Present with `session_value`: each agent's value of the rest of the session.
    session: Option<SessionValue>,
    dim: usize,
}

/// `V_i(s)`, each agent's value of the rest of the session from a state on: one hidden
/// layer shared by the agents, an output per agent.
#[derive(Module, Debug)]
pub struct SessionValue {
    hidden: Linear,
    out: Linear,
}

impl SessionValue {
    /// `[N, B]` for states `[B, S]`.
    pub fn forward(&self, s: Tensor<2>) -> Tensor<2> {
        self.out.forward(relu(self.hidden.forward(s))).swap_dims(0, 1)
    }
}

/// The nonlinear per-item critic of [`CriticForm::List`]: each agent's state image
/// `T_i(s)` and a shared item image `G([e, u(s) ⊙ e])` meet in one hidden layer; the
/// product `u(s) ⊙ e` lets the item image itself depend on the state.
#[derive(Module, Debug)]
pub struct ListCritic {
    state: BatchedLinear,
    project: Linear,
    item: Linear,
    out: BatchedLinear,
}

impl ListCritic {
    fn new(cfg: &MmrfNetConfig, device: &Device) -> Self {
        ListCritic {
            state: BatchedLinear::new(N_AGENTS, cfg.state, cfg.hidden, device),
            project: LinearConfig::new(cfg.state, cfg.dim).init(device),
            item: LinearConfig::new(2 * cfg.dim, cfg.hidden).with_bias(false).init(device),
            out: BatchedLinear::new(N_AGENTS, cfg.hidden, 1, device),
        }
    }

    /// `q_i(s, e)`: `[N, B, K]` for states `[B, S]` and items `[B, K, D]`.
    fn forward(&self, s: Tensor<2>, items: Tensor<3>) -> Tensor<3> {
        let [b, k, d] = items.dims();
        let s_dim = s.dims()[1];
        let u = self.project.forward(s.clone()).reshape([b, 1, d]);
        let g = linear_rows(&self.item, Tensor::cat(vec![items.clone(), items * u], 2)); // [B, K, hid]
        let hid = g.dims()[2];
        let t = self
            .state
            .forward(s.reshape([1, b, s_dim]).repeat_dim(0, N_AGENTS))
            .reshape([N_AGENTS, b, 1, hid]);
        let h = relu(t + g.reshape([1, b, k, hid])); // [N, B, K, hid]
        self.out
            .forward(h.reshape([N_AGENTS, b * k, hid]))
            .reshape([N_AGENTS, b, k])
    }
}

/// MASSA's signal network: how much of each critic's message reaches each critic.
#[derive(Module, Debug)]
pub struct CriticSignal {
    message: Linear,
    mixing: Linear,
}

impl Critics {
    pub fn new(cfg: &MmrfNetConfig, device: &Device) -> Self {
        Critics {
            trunk: BatchedLinear::new(N_AGENTS, cfg.state, cfg.hidden, device),
            value: BatchedLinear::new(N_AGENTS, cfg.hidden, 1, device),
            advantage: BatchedLinear::new(N_AGENTS, cfg.hidden, cfg.dim, device),
            reward: LinearConfig::new(cfg.state, N_AGENTS * cfg.dim).init(device),
            signal: cfg.critic_signal.then(|| CriticSignal {
                message: LinearConfig::new(cfg.hidden, cfg.hidden).init(device),
                mixing: LinearConfig::new(cfg.state, N_AGENTS * N_AGENTS).init(device),
            }),
            list: (cfg.critic == CriticForm::List).then(|| ListCritic::new(cfg, device)),
            session: cfg.session_value.then(|| SessionValue {
                hidden: LinearConfig::new(cfg.state, cfg.hidden).init(device),
                out: LinearConfig::new(cfg.hidden, N_AGENTS).init(device),
            }),
            dim: cfg.dim,
        }
    }

    /// `(c, W)`: `[N, B, 1]` and `[N, B, D]`.
    fn parts(&self, s: Tensor<2>) -> (Tensor<3>, Tensor<3>) {
        let [b, s_dim] = s.dims();
        let mut t = relu(
            self.trunk
                .forward(s.clone().reshape([1, b, s_dim]).repeat_dim(0, N_AGENTS)),
        );
        if let Some(sig) = &self.signal {
            let hid = t.dims()[2];
            let m = linear_rows(&sig.message, t.clone()).swap_dims(0, 1); // [B, N(j), hid]
            let mix = softmax(sig.mixing.forward(s).reshape([b, N_AGENTS, N_AGENTS]), 2); // [B, N(i), N(j)]
            let mixed = mix.matmul(m).swap_dims(0, 1); // [N(i), B, hid]
            t = relu(t + mixed.reshape([N_AGENTS, b, hid]));
        }
        (self.value.forward(t.clone()), self.advantage.forward(t))
    }

    /// The critics' form.
    pub fn form(&self) -> CriticForm {
        if self.list.is_some() {
            CriticForm::List
        } else {
            CriticForm::Linear
        }
    }

    /// `∂Q_i(s, a)/∂a = W_i(s)`: `[N, B, D]` for the linear form (each critic is linear in
    /// the action); the score-list form has no such slope.
    pub fn action_gradients(&self, s: Tensor<2>) -> Tensor<3> {
        self.parts(s).1
    }

    /// `Q`: `[N, B]` for states `[B, S]` and actions `[N, B, D]`.
    pub fn q(&self, s: Tensor<2>, a: Tensor<3>) -> Tensor<2> {
        let [n, b, _] = a.dims();
        let (c, w) = self.parts(s);
        c.reshape([n, b]) + (w * a).sum_dim(2).reshape([n, b])
    }

    /// Per-item values `[N, B, K]` of items `[B, K, D]`.
    pub fn q_items(&self, s: Tensor<2>, items: Tensor<3>) -> Tensor<3> {
        if let Some(list) = &self.list {
            return list.forward(s, items);
        }
        let (c, w) = self.parts(s);
        let adv = w.swap_dims(0, 1).matmul(items.swap_dims(1, 2)).swap_dims(0, 1); // [N, B, K]
        adv + c
    }

    /// The critic of a score list: `Q_i(s, a^i) = Σ_j p_ij q_i(s, e_j)` with
    /// `p_i = softmax_j(⟨a^i, e_j⟩ / τ)` over each request's candidates `[B, C, D]`
    /// (`mask` `[B, C]`: 1 for a real candidate, 0 for padding). Returns `Q` `[N, B]` and
    /// `log p` `[N, B, C]` (what a pull toward the logged behaviour reads).
    pub fn q_list(
        &self,
        s: Tensor<2>,
        a: Tensor<3>,
        candidates: Tensor<3>,
        mask: Tensor<2>,
        temperature: f64,
    ) -> (Tensor<2>, Tensor<3>) {
        let [n, b, _] = a.dims();
        let c = candidates.dims()[1];
        let logits = a
            .swap_dims(0, 1)
            .matmul(candidates.clone().swap_dims(1, 2))
            .swap_dims(0, 1)
            / temperature; // [N, B, C]
        let padding = (mask.reshape([1, b, c]) - 1.0) * 1e9;
        let log_p = burn::tensor::activation::log_softmax(logits + padding, 2);
        let q = self.q_items(s, candidates); // [N, B, C]
        ((log_p.clone().exp() * q).sum_dim(2).reshape([n, b]), log_p)
    }

    /// Parameters that training reaches: with the score-list form, its layers and the
    /// reward heads (the linear form's trunk and slopes are then unused).
    pub fn trained_params(&self) -> usize {
        match &self.list {
            Some(list) => {
                list.num_params() + self.reward.num_params() + self.session.as_ref().map_or(0, |v| v.num_params())
            }
            None => self.num_params(),
        }
    }

    /// `V_i(s)`, `[N, B]`: each agent's value of the rest of the session from states `[B, S]`,
    /// or `None` without the session-value head.
    pub fn session_values(&self, s: Tensor<2>) -> Option<Tensor<2>> {
        self.session.as_ref().map(|v| v.forward(s))
    }

    /// Predicted per-item feedback `[B, K, N]` of items `[B, K, D]`.
    pub fn item_rewards(&self, s: Tensor<2>, items: Tensor<3>) -> Tensor<3> {
        let b = s.dims()[0];
        let u = self.reward.forward(s).reshape([b, N_AGENTS, self.dim]); // [B, N, D]
        items.matmul(u.swap_dims(1, 2)) // [B, K, N]
    }
}

/// Everything MMRF trains, in one module (so one file holds it and one soft update moves
/// its target copy).
#[derive(Module, Debug)]
pub struct MmrfNet {
    pub items: ItemEncoder,
    pub state: StateEncoder,
    pub agents: Agents,
    pub critics: Critics,
}

impl MmrfNet {
    pub fn new(shape: &FeatureShape, cfg: &MmrfNetConfig, device: &Device) -> Self {
        MmrfNet {
            items: ItemEncoder::new(shape, cfg, device),
            state: StateEncoder::new(shape, cfg, device),
            agents: Agents::new(cfg, device),
            critics: Critics::new(cfg, device),
        }
    }

    /// Parameters training reaches, per part: items, state, agents, critics
    /// ([`Critics::trained_params`]).
    pub fn trained_params(&self) -> [(&'static str, usize); 4] {
        [
            ("items", self.items.num_params()),
            ("state", self.state.num_params()),
            ("agents", self.agents.num_params()),
            ("critics", self.critics.trained_params()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small network's settings and a device, with burn's generator seeded and held so
    /// that tests running side by side do not draw from each other's stream.
    fn tiny() -> (MmrfNetConfig, Device, std::sync::MutexGuard<'static, ()>) {
        let cfg = MmrfNetConfig {
            dim: 4,
            state: 6,
            agent: 4,
            heads: 2,
            hidden: 5,
            collaboration: Collaboration::Attention,
            critic_signal: false,
            candidates: 0,
            critic: CriticForm::Linear,
            session_value: false,
        };
        let guard = crate::device::seeded(5);
        (cfg, Device::flex(), guard)
    }

    #[test]
    fn batched_linear_is_n_independent_layers() {
        let (_, device, _seeded) = tiny();
        let l = BatchedLinear::new(3, 2, 4, &device);
        let x = Tensor::<3>::random([3, 5, 2], Distribution::Normal(0.0, 1.0), &device);
        let y: Vec<f32> = l.forward(x.clone()).into_data().try_to_vec().unwrap();
        let w: Vec<f32> = l.weight.val().into_data().try_to_vec().unwrap();
        let bias: Vec<f32> = l.bias.val().into_data().try_to_vec().unwrap();
        let xv: Vec<f32> = x.into_data().try_to_vec().unwrap();
        for n in 0..3 {
            for b in 0..5 {
                for o in 0..4 {
                    let want = (0..2)
                        .map(|i| xv[(n * 5 + b) * 2 + i] * w[(n * 2 + i) * 4 + o])
                        .sum::<f32>()
                        + bias[n * 4 + o];
                    assert!((y[(n * 5 + b) * 4 + o] - want).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn attention_reads_only_the_other_agents() {
        let (cfg, device, _seeded) = tiny();
        let agents = Agents::new(&cfg, &device);
        // Agents 1..N identical: whatever its attention weights, agent 0's view is their
        // common value, so it cannot depend on agent 0's own embedding (j ≠ i).
        let other = Tensor::<3>::random([2, 1, cfg.agent], Distribution::Normal(0.0, 1.0), &device);
        let with_first = |first: Tensor<3>| {
            let h = Tensor::cat(vec![first, other.clone().repeat_dim(1, N_AGENTS - 1)], 1);
            agents.collaborate(h).into_data().try_to_vec::<f32>().unwrap()
        };
        let e1 = with_first(Tensor::random(
            [2, 1, cfg.agent],
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
        let e2 = with_first(Tensor::random(
            [2, 1, cfg.agent],
            Distribution::Normal(3.0, 1.0),
            &device,
        ));
        let at = |v: &[f32], b: usize, i: usize| {
            v[(b * N_AGENTS + i) * cfg.agent..(b * N_AGENTS + i + 1) * cfg.agent].to_vec()
        };
        for b in 0..2 {
            let (x, y) = (at(&e1, b, 0), at(&e2, b, 0));
            assert!(
                x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-5),
                "agent 0 saw itself"
            );
            // Agent 1 attends to agent 0 among others: its view moves.
            let (x, y) = (at(&e1, b, 1), at(&e2, b, 1));
            assert!(
                x.iter().zip(&y).any(|(p, q)| (p - q).abs() > 1e-6),
                "agent 1 ignored agent 0"
            );
        }
    }

    #[test]
    fn the_main_actor_reads_every_agents_view() {
        // Eq. 3: a^N = f_N(h^N, e, a^{1..N-1}) with e = [e^1..e^N], not only e^N. With the
        // main actor's weights on the auxiliary actions zeroed, an auxiliary agent's view
        // can reach the main action only as part of e.
        for (collaboration, reads) in [
            (Collaboration::Attention, true),
            (Collaboration::Concat, true),
            (Collaboration::None, false),
        ] {
            let (mut cfg, device, _seeded) = tiny();
            cfg.collaboration = collaboration;
            let mut agents = Agents::new(&cfg, &device);
            let w = agents.main_hidden.weight.val();
            let [rows, cols] = w.dims();
            let aux_rows = (N_AGENTS - 1) * cfg.dim;
            let w = w.slice_assign(
                [rows - aux_rows..rows, 0..cols],
                Tensor::zeros([aux_rows, cols], &device),
            );
            agents.main_hidden.weight = Param::from_tensor(w);
            let s = Tensor::<2>::random([3, cfg.state], Distribution::Normal(0.0, 1.0), &device);
            let h = agents.embeddings(s);
            let e = Tensor::<3>::random([3, N_AGENTS, cfg.agent], Distribution::Normal(0.0, 1.0), &device);
            let main = |e: Tensor<3>| -> Vec<f32> {
                let a = agents.actions(h.clone(), e, 1.0);
                a.slice([N_AGENTS - 1..N_AGENTS, 0..3, 0..cfg.dim])
                    .into_data()
                    .try_to_vec()
                    .unwrap()
            };
            let bumped = e.clone().slice_assign(
                [0..3, 0..1, 0..cfg.agent],
                Tensor::ones([3, 1, cfg.agent], &device) * 2.0,
            );
            let (before, after) = (main(e), main(bumped));
            let moved = before.iter().zip(&after).any(|(p, q)| (p - q).abs() > 1e-5);
            assert_eq!(moved, reads, "{collaboration:?}: the first agent's view");
        }
    }

    #[test]
    fn the_state_reads_the_real_candidates_only_when_asked() {
        let (mut cfg, device, _seeded) = tiny();
        let shape = FeatureShape {
            n_users: 3,
            user_dim: 2,
            n_videos: 5,
            video_dim: 2,
            n_authors: 2,
            n_tags: 2,
        };
        let ints = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [2]), &device);
        let batch = |candidates: Tensor<3>, mask: Tensor<2>| StateBatch {
            users: ints(vec![0, 1]),
            user_features: Tensor::zeros([2, 2], &device),
            history: Tensor::zeros([2, 3, cfg.dim], &device),
            feedback: Tensor::zeros([2, 3, FEEDBACK_DIM], &device),
            mask: Tensor::ones([2, 3], &device),
            hour: ints(vec![3, 20]),
            tab: ints(vec![1, 4]),
            position: Tensor::zeros([2, 1], &device),
            candidates,
            candidate_mask: mask,
        };
        let pool = Tensor::<3>::random([2, 2, cfg.dim], Distribution::Normal(0.0, 1.0), &device);
        let other = pool.clone().slice_assign(
            [0..2, 1..2, 0..cfg.dim],
            Tensor::random([2, 1, cfg.dim], Distribution::Normal(0.0, 1.0), &device),
        );
        let first_only = Tensor::<2>::from_floats([[1.0, 0.0], [1.0, 0.0]], &device);
        let both = Tensor::<2>::ones([2, 2], &device);
        let state = |enc: &StateEncoder, c: Tensor<3>, m: Tensor<2>| -> Vec<f32> {
            enc.forward(batch(c, m)).into_data().try_to_vec().unwrap()
        };
        let differ = |a: &[f32], b: &[f32]| a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-6);
        cfg.candidates = 2;
        let reads = StateEncoder::new(&shape, &cfg, &device);
        // The second candidate counts when it is real, and not when it is padding.
        assert!(differ(
            &state(&reads, pool.clone(), both.clone()),
            &state(&reads, other.clone(), both.clone())
        ));
        assert!(!differ(
            &state(&reads, pool.clone(), first_only.clone()),
            &state(&reads, other.clone(), first_only)
        ));
        cfg.candidates = 0;
        let ignores = StateEncoder::new(&shape, &cfg, &device);
        assert!(!differ(
            &state(&ignores, pool, both.clone()),
            &state(&ignores, other, both)
        ));
    }

    #[test]
    fn the_list_critic_values_an_action_by_the_ranking_it_induces() {
        let (mut cfg, device, _seeded) = tiny();
        cfg.critic = CriticForm::List;
        let critics = Critics::new(&cfg, &device);
        let (b, c) = (2, 3);
        let s = Tensor::<2>::random([b, cfg.state], Distribution::Normal(0.0, 1.0), &device);
        // Three orthogonal unit items: an action equal to one of them scores it 1, the others 0.
        let eye = Tensor::<2>::eye(cfg.dim, &device).slice([0..c, 0..cfg.dim]);
        let cands = eye.reshape([1, c, cfg.dim]).repeat_dim(0, b);
        let q = critics.q_items(s.clone(), cands.clone()); // [N, B, C]
        let qv: Vec<f32> = q.clone().into_data().try_to_vec().unwrap();
        // Nonlinear in the item: the value of the mean of two items is not the mean value.
        let mid = (cands.clone().slice([0..b, 0..1, 0..cfg.dim]) + cands.clone().slice([0..b, 1..2, 0..cfg.dim])) / 2.0;
        let q_mid: Vec<f32> = critics.q_items(s.clone(), mid).into_data().try_to_vec().unwrap();
        let linear_mid = |n: usize, x: usize| (qv[(n * b + x) * c] + qv[(n * b + x) * c + 1]) / 2.0;
        assert!((0..N_AGENTS).any(|n| (q_mid[n * b] - linear_mid(n, 0)).abs() > 1e-4));
        // An action pointing at candidate 1, at a sharp temperature, is worth q(e_1); the
        // padded candidate 2 gets no weight even when the action points at it.
        let mask = Tensor::<2>::from_floats([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]], &device);
        let at = |j: usize| {
            cands
                .clone()
                .slice([0..b, j..j + 1, 0..cfg.dim])
                .swap_dims(0, 1)
                .repeat_dim(0, N_AGENTS)
        };
        let (q1, log_p) = critics.q_list(s.clone(), at(1), cands.clone(), mask.clone(), 0.01);
        let q1: Vec<f32> = q1.into_data().try_to_vec().unwrap();
        let p: Vec<f32> = log_p.exp().into_data().try_to_vec().unwrap();
        for n in 0..N_AGENTS {
            for x in 0..b {
                let want = qv[(n * b + x) * c + 1];
                assert!(p[(n * b + x) * c + 1] > 0.999);
                assert!((q1[n * b + x] - want).abs() < 1e-3 * (1.0 + want.abs()));
                let sum: f32 = (0..c).map(|j| p[(n * b + x) * c + j]).sum();
                assert!((sum - 1.0).abs() < 1e-4);
            }
        }
        let (_, log_p) = critics.q_list(s, at(2), cands, mask, 0.01);
        let p: Vec<f32> = log_p.exp().into_data().try_to_vec().unwrap();
        assert!((0..N_AGENTS * b).all(|r| p[r * c + 2] < 1e-6));
    }

    #[test]
    fn the_main_actor_alone_is_the_main_action() {
        let (cfg, device, _seeded) = tiny();
        let agents = Agents::new(&cfg, &device);
        let s = Tensor::<2>::random([3, cfg.state], Distribution::Normal(0.0, 1.0), &device);
        let h = agents.embeddings(s);
        let e = agents.collaborate(h.clone());
        let a = agents.actions(h.clone(), e.clone(), 1.0);
        let n = N_AGENTS;
        let main: Vec<f32> = a
            .clone()
            .slice([n - 1..n, 0..3, 0..cfg.dim])
            .into_data()
            .try_to_vec()
            .unwrap();
        let h_main = h.slice([0..3, n - 1..n, 0..cfg.agent]).reshape([3, cfg.agent]);
        let alone: Vec<f32> = agents
            .main_from(h_main.clone(), e.clone(), a.clone().slice([0..n - 1, 0..3, 0..cfg.dim]))
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(main.iter().zip(&alone).all(|(x, y)| (x - y).abs() < 1e-6));
        // Other partners, another action.
        let moved: Vec<f32> = agents
            .main_from(h_main, e, a.slice([0..n - 1, 0..3, 0..cfg.dim]).neg())
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(main.iter().zip(&moved).any(|(x, y)| (x - y).abs() > 1e-5));
    }

    #[test]
    fn actions_are_unit_vectors_for_every_agent() {
        for collaboration in [Collaboration::Attention, Collaboration::Concat, Collaboration::None] {
            let (mut cfg, device, _seeded) = tiny();
            cfg.collaboration = collaboration;
            let agents = Agents::new(&cfg, &device);
            let s = Tensor::<2>::random([3, cfg.state], Distribution::Normal(0.0, 1.0), &device);
            let h = agents.embeddings(s);
            let e = agents.collaborate(h.clone());
            let a = agents.actions(h, e, 1.0);
            assert_eq!(a.dims(), [N_AGENTS, 3, cfg.dim]);
            let norms: Vec<f32> = a.powi_scalar(2).sum_dim(2).into_data().try_to_vec().unwrap();
            assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
        }
    }
}
