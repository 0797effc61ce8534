//! The world's myopic oracle as a method of the offline evaluation: Table 1's ceiling.
//!
//! [`OracleRanker`] scores a logged request's candidates by the world's true expected play
//! time at the state the user was in when the request was served
//! ([`mmrf_world::WorldModel::expected_play_at`], read from the world's `mmrf_states.bin`).
//! It goes through the same scoring, GAUC and NCIS code as every trained method, so its
//! row is the best WatchTime ranking this world allows, measured the same way. It exists
//! only on a generated world: real KuaiRand has no ground truth.

use std::collections::HashMap;
use std::path::Path;

use mmrf_data::session::RequestState;
use mmrf_data::Dataset;
use mmrf_train::Ranker;
use mmrf_world::oracle::TruthSnapshots;
use mmrf_world::{World, WorldModel};

/// Ranks a logged request's candidates by their true expected play time (see the module).
pub struct OracleRanker {
    model: WorldModel,
    truth: TruthSnapshots,
    /// (user, time of the request's first shown row) → index in the candidate log.
    requests: HashMap<(u32, i64), u32>,
}

impl OracleRanker {
    /// The oracle of the generated world in `data`'s directory; a clear error on data
    /// without ground truth (real KuaiRand, or a world written before the states file).
    pub fn load(data: &Dataset) -> Result<OracleRanker, String> {
        let dir: &Path = &data.dir;
        let no_truth = |why: String| {
            format!(
                "the oracle needs a generated world's ground truth; {}: {why} (real KuaiRand has none)",
                dir.display()
            )
        };
        let world = World::load(dir).map_err(|e| no_truth(e.to_string()))?;
        let log = data
            .candidates
            .as_ref()
            .ok_or_else(|| no_truth("no candidate log".into()))?;
        let truth =
            TruthSnapshots::read(dir, world.model.dim, log.requests.len()).map_err(|e| no_truth(e.to_string()))?;
        let requests = log
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.user, data.log(r.split).time_ms[r.first_row as usize]), i as u32))
            .collect();
        Ok(OracleRanker {
            model: world.model,
            truth,
            requests,
        })
    }
}

impl Ranker for OracleRanker {
    fn method(&self) -> &str {
        "oracle"
    }

    /// A request the world did not log has no true state: its scores are NaN, so that no
    /// metric silently reads them as a ranking.
    fn score(&self, state: &RequestState<'_>, candidates: &[u32], scores: &mut [f32]) {
        match self.requests.get(&(state.user, state.time_ms)) {
            Some(&i) => {
                let (interest, fatigue) = self.truth.get(i as usize);
                for (s, &c) in scores.iter_mut().zip(candidates) {
                    *s = self.model.expected_play_at(state.user, interest, fatigue, c) as f32;
                }
            }
            None => scores.iter_mut().for_each(|s| *s = f32::NAN),
        }
    }
}
