//! The logged transitions and an update's batch: which requests, which items (shown ones
//! and never-shown samples picked by a random action), and the score-list critic's
//! candidate sets.

use burn::prelude::*;
use mmrf_data::session::{Impression, RequestSet, RequestState, Timelines};
use mmrf_data::{Dataset, LogColumns, LogSplit, Signal};
use mmrf_model::mmrf::N_AGENTS;
use mmrf_model::FeatureSpace;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::config::{ActorCriticConfig, Augment, NextState};
use crate::state::StateInputs;

/// The logged transitions of the training split.
pub(super) struct Transitions<'a> {
    pub(super) set: RequestSet<'a>,
    /// Index of the next request of the session, if any.
    pub(super) next: Vec<Option<u32>>,
    /// Per-item label scale of each signal (1 / std).
    pub(super) item_scale: [f32; N_AGENTS],
    /// The most items a request shows (K): the width of every per-item tensor.
    pub(super) k: usize,
}

pub(super) fn signal_value(log: &mmrf_data::LogColumns, sig: Signal, row: usize) -> f32 {
    let v = log.label(sig, row);
    if sig == Signal::Hate {
        -v
    } else {
        v
    }
}

pub(super) fn std_of(values: impl Iterator<Item = f32>) -> f32 {
    let (mut n, mut s, mut s2) = (0f64, 0f64, 0f64);
    for v in values {
        n += 1.0;
        s += v as f64;
        s2 += (v as f64).powi(2);
    }
    let var = (s2 / n.max(1.0) - (s / n.max(1.0)).powi(2)).max(0.0);
    (var.sqrt() as f32).max(1e-6)
}

impl<'a> Transitions<'a> {
    pub(super) fn build(data: &'a Dataset) -> Transitions<'a> {
        Transitions::build_split(data, LogSplit::Train)
    }

    pub(super) fn build_split(data: &'a Dataset, split: LogSplit) -> Transitions<'a> {
        let set = data.requests(split, &Default::default());
        let log = data.log(split);
        let n = set.requests.len();
        let next = (0..n)
            .map(|i| {
                let r = &set.requests[i];
                set.requests
                    .get(i + 1)
                    .filter(|x| x.session == r.session && x.position == r.position + 1)
                    .map(|_| i as u32 + 1)
            })
            .collect();
        let item_scale =
            std::array::from_fn(|k| 1.0 / std_of((0..log.len()).map(|i| signal_value(log, Signal::ALL[k], i))));
        let k = set.max_shown().max(1);
        Transitions {
            set,
            next,
            item_scale,
            k,
        }
    }
}

/// One row of an update's batch: a logged request and the items it is trained on.
pub(super) struct Row {
    /// Index of the request in the training transitions.
    pub(super) request: usize,
    /// The shown items (logged rows), or the non-impression candidates picked for it.
    pub(super) items: Vec<u32>,
    /// A non-impression sample, labelled by the simulator (or MMRF-NS's constant).
    pub(super) sample: bool,
}

/// An update's batch: `batch` logged requests, next in the shuffled epoch order, then
/// for a `sample_share` of them a non-impression sample: as many of the request's
/// candidates the logger did not show as it showed (or `sample_fraction` of them, in rows
/// of a slate's width), the top ones under a random action
/// (Algorithm 1's exploration), scored with the item table.
#[allow(clippy::too_many_arguments)]
pub(super) fn sample_rows(
    cfg: &ActorCriticConfig,
    batch_size: usize,
    tr: &Transitions<'_>,
    log: &mmrf_data::LogColumns,
    rng: &mut ChaCha8Rng,
    order: &mut [usize],
    cursor: &mut usize,
    table: &[f32],
    cands: &mut Vec<u32>,
) -> mmrf_data::Result<(Vec<usize>, Vec<Row>)> {
    let d = cfg.net.dim;
    let mut batch: Vec<usize> = Vec::with_capacity(batch_size);
    while batch.len() < batch_size {
        if *cursor == order.len() {
            order.shuffle(rng);
            *cursor = 0;
        }
        batch.push(order[*cursor]);
        *cursor += 1;
    }
    let mut rows: Vec<Row> = batch
        .iter()
        .map(|&i| Row {
            request: i,
            items: tr.set.shown_videos(i, log),
            sample: false,
        })
        .collect();
    if cfg.augment == Augment::None {
        return Ok((batch, rows));
    }
    let mut samples = Vec::new();
    let mut scored: Vec<(f32, u32)> = Vec::new();
    let mut a = vec![0f32; d];
    for row in &rows {
        if rng.random::<f64>() >= cfg.sample_share {
            continue;
        }
        tr.set.candidates(row.request, log, cands)?;
        a.iter_mut().for_each(|x| *x = rng.random::<f32>() * 2.0 - 1.0);
        scored.clear();
        scored.extend(cands.iter().filter(|c| !row.items.contains(c)).map(|&c| {
            let e = &table[c as usize * d..(c as usize + 1) * d];
            (a.iter().zip(e).map(|(x, y)| x * y).sum::<f32>(), c)
        }));
        // The top `k` by score, best first: as many as the request showed, or the share of
        // its non-impressions that `sample_fraction` asks for.
        let shown = row.items.len().max(1);
        let k = if cfg.sample_fraction > 0.0 {
            ((scored.len() as f64 * cfg.sample_fraction).round() as usize).max(1)
        } else {
            shown
        }
        .min(scored.len());
        if k == 0 {
            continue;
        }
        let best_first = |x: &(f32, u32), y: &(f32, u32)| y.0.total_cmp(&x.0);
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, best_first);
        }
        scored[..k].sort_by(best_first);
        // Rows are as wide as a slate: a larger sample fills several rows of one request.
        for chunk in scored[..k].chunks(tr.k.max(1)) {
            samples.push(Row {
                request: row.request,
                items: chunk.iter().map(|x| x.1).collect(),
                sample: true,
            });
        }
    }
    rows.extend(samples);
    Ok((batch, rows))
}

/// A request's candidate set `C'` for the score-list critic: `first` (the row's items),
/// then others of the request's candidates drawn at random, `cfg.list_candidates` in all.
pub(super) fn candidate_list(
    cfg: &ActorCriticConfig,
    tr: &Transitions<'_>,
    log: &mmrf_data::LogColumns,
    request: usize,
    first: &[u32],
    rng: &mut ChaCha8Rng,
    cands: &mut Vec<u32>,
) -> mmrf_data::Result<Vec<u32>> {
    let mut out: Vec<u32> = first.iter().copied().take(cfg.list_candidates).collect();
    tr.set.candidates(request, log, cands)?;
    cands.retain(|c| !out.contains(c));
    let extra = cfg.list_candidates.saturating_sub(out.len()).min(cands.len());
    let (picked, _) = cands.partial_shuffle(rng, extra);
    out.extend_from_slice(picked);
    Ok(out)
}

/// The candidate sets of a batch's rows as tensors: embeddings `[B, C, D]` (rows of
/// `e_pad`, whose last row is padding), a mask of the real ones `[B, C]`.
pub(super) fn list_tensors(
    lists: &[Vec<u32>],
    width: usize,
    e_pad: &Tensor<2>,
    row_of: impl Fn(u32) -> i64,
    device: &Device,
) -> (Tensor<3>, Tensor<2>) {
    let b = lists.len();
    let [pad, d] = e_pad.dims();
    let mut idx = vec![pad as i64 - 1; b * width];
    let mut mask = vec![0f32; b * width];
    for (x, list) in lists.iter().enumerate() {
        for (k, &v) in list.iter().take(width).enumerate() {
            idx[x * width + k] = row_of(v);
            mask[x * width + k] = 1.0;
        }
    }
    let e = e_pad
        .clone()
        .select(0, Tensor::from_data(TensorData::new(idx, [b * width]), device))
        .reshape([b, width, d]);
    (e, Tensor::from_data(TensorData::new(mask, [b, width]), device))
}

/// What the score-list critic's actor phase reads of a batch.
pub(super) struct ListBatch {
    /// Each row's candidate embeddings `[B, C, D]` (no gradient).
    pub(super) candidates: Tensor<3>,
    /// `[B, C]`: 1 for a real candidate.
    pub(super) mask: Tensor<2>,
    /// `[B, C]`: 1 for an item the logger showed (logged rows only).
    pub(super) behaviour: Tensor<2>,
}

/// Algorithm 1's history of `s_t ∪ Ĩ_k`: the last `len` impressions of `now`, then the
/// sampled `items` with feedback drawn from their simulated `labels` (per item, in the
/// agents' reward units: each signal's label over its scale is its probability, Hate's
/// negated; WatchTime's is seconds of play). Binary signals are Bernoulli draws from `rng`.
pub fn simulated_history(
    now: &[Impression],
    len: usize,
    items: &[u32],
    labels: &[[f32; N_AGENTS]],
    item_scale: &[f32; N_AGENTS],
    rng: &mut ChaCha8Rng,
) -> Vec<Impression> {
    let mut out: Vec<Impression> = now[now.len().saturating_sub(len)..].to_vec();
    for (&video, label) in items.iter().zip(labels) {
        let raw: [f32; N_AGENTS] = std::array::from_fn(|a| label[a] / item_scale[a]);
        let mut draw = |a: usize| {
            let p = match Signal::ALL[a] {
                Signal::Hate => -raw[a],
                _ => raw[a],
            };
            rng.random::<f32>() < p.clamp(0.0, 1.0)
        };
        let (click, like, follow, comment, hate, long_view) = (draw(0), draw(1), draw(2), draw(3), draw(4), draw(5));
        let play_time_ms = (raw[N_AGENTS - 1].max(0.0) * 1000.0).round() as u32;
        out.push(Impression {
            video,
            play_time_ms,
            // The state reads play time alone; the item's duration is in its features.
            duration_ms: 0,
            click,
            like,
            follow,
            comment,
            hate,
            long_view,
        });
    }
    out
}

/// The states of a batch's rows, now and next, and whether each row's session ended
/// there (1) or went on (0). A row's next state is its request's next one in the log, or,
/// for a non-impression sample with `next_state = "simulated"`, Algorithm 1's
/// `s_t ∪ Ĩ_k` ([`simulated_history`], feedback drawn from `feedback_rng`). The next
/// state of a session's last request is unused.
#[allow(clippy::too_many_arguments)]
pub(super) fn batch_states(
    cfg: &ActorCriticConfig,
    fs: &FeatureSpace,
    timelines: &Timelines,
    tr: &Transitions<'_>,
    log: &LogColumns,
    rows: &[Row],
    sample_labels: &[Vec<[f32; N_AGENTS]>],
    feedback_rng: &mut ChaCha8Rng,
) -> mmrf_data::Result<(StateInputs, StateInputs, Vec<f32>)> {
    let mut s_in = StateInputs::with_candidates(cfg.history, cfg.net.candidates);
    let mut n_in = StateInputs::with_candidates(cfg.history, cfg.net.candidates);
    let mut done = Vec::with_capacity(rows.len());
    let mut cbuf: Vec<u32> = Vec::new();
    let mut samples = sample_labels.iter();
    for row in rows {
        let i = row.request;
        let now = timelines.state(&tr.set, log, i, cfg.history);
        s_in.push(fs, &now);
        if cfg.net.candidates > 0 {
            tr.set.candidates(i, log, &mut cbuf)?;
            s_in.push_candidates(&cbuf);
        }
        let labels = if row.sample { samples.next() } else { None };
        if let (NextState::Simulated, Some(labels)) = (cfg.next_state, labels) {
            done.push(if tr.next[i].is_some() { 0.0 } else { 1.0 });
            let history = simulated_history(
                now.history,
                cfg.history,
                &row.items,
                labels,
                &tr.item_scale,
                feedback_rng,
            );
            let position = now.position.saturating_add(1);
            n_in.push(
                fs,
                &RequestState {
                    position,
                    history: &history,
                    ..now
                },
            );
            if cfg.net.candidates > 0 {
                // The same moment: the request's candidates less the items just shown.
                tr.set.candidates(i, log, &mut cbuf)?;
                cbuf.retain(|v| !row.items.contains(v));
                n_in.push_candidates(&cbuf);
            }
            continue;
        }
        let next = match tr.next[i] {
            Some(j) => {
                done.push(0.0f32);
                j as usize
            }
            None => {
                done.push(1.0f32);
                i
            }
        };
        n_in.push(fs, &timelines.state(&tr.set, log, next, cfg.history));
        if cfg.net.candidates > 0 {
            tr.set.candidates(next, log, &mut cbuf)?;
            n_in.push_candidates(&cbuf);
        }
    }
    Ok((s_in, n_in, done))
}

/// What the critics regress a batch's items on, `K` slots per row.
pub(super) struct ItemTargets {
    /// Each slot's row in the batch's embedding table (`pad` where the row has no item).
    pub(super) shown_idx: Vec<i64>,
    /// 1 for a logged (shown) item: the reward heads learn from these alone.
    pub(super) shown_mask: Vec<f32>,
    /// `[B, K, N]`: each item's reward per signal, logged or simulated, in reward units.
    pub(super) item_labels: Vec<f32>,
    /// 1 for every real item, shown or sampled: the TD error's mask.
    pub(super) act_mask: Vec<f32>,
}

/// The per-item targets of a batch's rows: logged feedback for shown items, the samples'
/// `sample_labels` (in sample order) for never-shown ones. `slot` maps a video to its row
/// in the batch's embedding table, whose padding row is `pad`.
pub(super) fn item_targets(
    tr: &Transitions<'_>,
    log: &LogColumns,
    rows: &[Row],
    sample_labels: &[Vec<[f32; N_AGENTS]>],
    slot: &[u32],
    k_max: usize,
    pad: usize,
) -> ItemTargets {
    let b = rows.len();
    let mut shown_idx = vec![pad as i64; b * k_max];
    let mut shown_mask = vec![0f32; b * k_max];
    let mut item_labels = vec![0f32; b * k_max * N_AGENTS];
    let mut act_mask = vec![0f32; b * k_max];
    let mut samples = sample_labels.iter();
    for (x, row) in rows.iter().enumerate() {
        let logged_rows = tr.set.shown_rows(&tr.set.requests[row.request]);
        let labels_here = if row.sample { samples.next() } else { None };
        for (k, &v) in row.items.iter().take(k_max).enumerate() {
            let at = x * k_max + k;
            shown_idx[at] = slot[v as usize] as i64;
            act_mask[at] = 1.0;
            if let Some(l) = labels_here {
                item_labels[at * N_AGENTS..(at + 1) * N_AGENTS].copy_from_slice(&l[k]);
            } else {
                shown_mask[at] = 1.0;
                let row_at = logged_rows[k] as usize;
                for (a, sig) in Signal::ALL.iter().enumerate() {
                    item_labels[at * N_AGENTS + a] = signal_value(log, *sig, row_at) * tr.item_scale[a];
                }
            }
        }
    }
    ItemTargets {
        shown_idx,
        shown_mask,
        item_labels,
        act_mask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn seen(video: u32) -> Impression {
        Impression {
            video,
            play_time_ms: 5_000,
            duration_ms: 9_000,
            click: true,
            like: false,
            follow: false,
            comment: false,
            hate: false,
            long_view: false,
        }
    }

    #[test]
    fn the_simulated_next_history_appends_the_sampled_items_with_their_feedback() {
        let now: Vec<Impression> = (0..5).map(seen).collect();
        let scale = [2.0, 1.0, 1.0, 1.0, 4.0, 1.0, 0.1];
        // Certain click and hate, never anything else; 30 s of play. Labels are in reward
        // units: probability × scale, Hate negated, WatchTime seconds × scale.
        let certain = [2.0, 0.0, 0.0, 0.0, -4.0, 0.0, 3.0];
        // Eq. 6's factor can push a label past 1: it is a certain event, not an error.
        let never = [0.0, 0.0, 0.0, 0.0, 0.0, -0.5, 0.0];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let h = simulated_history(&now, 3, &[40, 41], &[certain, never], &scale, &mut rng);
        let videos: Vec<u32> = h.iter().map(|i| i.video).collect();
        assert_eq!(
            videos,
            vec![2, 3, 4, 40, 41],
            "the last 3 seen, then the sampled items in order"
        );
        let a = &h[3];
        assert!(a.click && a.hate && !a.like && !a.follow && !a.comment && !a.long_view);
        assert_eq!(a.play_time_ms, 30_000);
        let b = &h[4];
        assert!(!b.click && !b.hate && !b.long_view && b.play_time_ms == 0);
    }

    #[test]
    fn simulated_feedback_is_drawn_at_the_labels_rates() {
        let scale = [1.0; N_AGENTS];
        let label = [0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let n = 4000;
        let items: Vec<u32> = (0..n).collect();
        let h = simulated_history(&[], 0, &items, &vec![label; n as usize], &scale, &mut rng);
        let rate = h.iter().filter(|i| i.click).count() as f64 / n as f64;
        assert!((rate - 0.3).abs() < 0.03, "click rate {rate}");
    }
}
