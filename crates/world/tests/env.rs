//! The world a request at a time ([`Episode`]): reproducible, driven by the caller's
//! scores, and ended by the world's leave model.

use mmrf_world::{End, Episode, MyopicOracle, Policy, Scale, WorldConfig, WorldModel};

fn model() -> WorldModel {
    WorldModel::new(WorldConfig::new(Scale::Small, 3))
}

/// Every step's candidates and viewed videos with their play times, until the visit ends,
/// scoring each request by `score`.
fn trace(
    model: &WorldModel,
    seed: u64,
    score: impl Fn(&Episode, usize) -> f32,
) -> (Vec<Vec<u32>>, Vec<(u32, u32)>, End) {
    let mut ep = Episode::start(model, seed, None).unwrap();
    let (mut candidates, mut viewed) = (Vec::new(), Vec::new());
    loop {
        candidates.push(ep.candidates().to_vec());
        let scores: Vec<f32> = (0..ep.candidates().len()).map(|i| score(&ep, i)).collect();
        let step = ep.step(model, &scores, None).unwrap();
        viewed.extend(step.viewed.iter().map(|v| (v.video, v.feedback.play_time_ms)));
        if let Some(end) = step.end {
            return (candidates, viewed, end);
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_visit_and_another_seed_another() {
    let m = model();
    let by_index = |_: &Episode, i: usize| -(i as f32);
    let a = trace(&m, 11, by_index);
    assert_eq!(a, trace(&m, 11, by_index));
    assert_ne!(a.0[0], trace(&m, 12, by_index).0[0]);
}

#[test]
fn the_best_scored_candidates_are_shown_best_first() {
    let m = model();
    let mut ep = Episode::start(&m, 5, Some(2)).unwrap();
    assert_eq!(ep.request().user, 2);
    let candidates = ep.candidates().to_vec();
    // Scores that reverse the candidates' order: the last candidates are the best.
    let scores: Vec<f32> = (0..candidates.len()).map(|i| i as f32).collect();
    let step = ep.step(&m, &scores, None).unwrap();
    let shown: Vec<u32> = step.viewed.iter().map(|v| v.video).collect();
    let expected: Vec<u32> = candidates.iter().rev().take(shown.len()).copied().collect();
    assert!(!shown.is_empty());
    assert_eq!(shown, expected);
}

#[test]
fn visits_end_mostly_by_leaving_and_the_oracle_keeps_users_longer_than_its_opposite() {
    let m = model();
    let oracle = MyopicOracle { model: &m };
    let play = |sign: f32| {
        let mut total = 0.0;
        let mut left = 0;
        for seed in 0..40 {
            let (_, viewed, end) = trace(&m, seed, |ep, i| {
                let mut s = vec![0.0; ep.candidates().len()];
                oracle.score_in(ep.truth(), &ep.request(), ep.candidates(), &mut s);
                sign * s[i]
            });
            total += viewed.iter().map(|v| v.1 as f64).sum::<f64>();
            left += (end == End::Left) as u32;
        }
        (total, left)
    };
    let (best, left_best) = play(1.0);
    let (worst, left_worst) = play(-1.0);
    assert!(left_best >= 30 && left_worst >= 30, "{left_best} {left_worst}");
    assert!(best > 1.3 * worst, "oracle {best} s against its opposite {worst} s");
}

#[test]
fn bad_steps_are_refused_with_a_reason() {
    let m = model();
    let mut ep = Episode::start(&m, 1, None).unwrap();
    let n = ep.candidates().len();
    let err = ep.step(&m, &vec![0.0; n - 1], None).err().unwrap();
    assert!(err.contains("one score per candidate"), "{err}");
    let err = ep.step(&m, &vec![0.0; n], Some(0.0)).err().unwrap();
    assert!(err.contains("positive"), "{err}");
    let err = Episode::start(&m, 1, Some(m.n_users() as u32)).err().unwrap();
    assert!(err.contains("not in this world"), "{err}");
    while ep.end().is_none() {
        let n = ep.candidates().len();
        ep.step(&m, &vec![0.0; n], Some(1.0)).unwrap();
    }
    let err = ep.step(&m, &vec![0.0; n], None).err().unwrap();
    assert!(err.contains("over"), "{err}");
}
