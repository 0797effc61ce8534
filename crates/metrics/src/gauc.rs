//! GAUC: the impression-weighted mean over users of each user's AUC.
//!
//! A user's AUC is the share of their ordered pairs (two impressions with different
//! labels) that the scores order correctly, score ties counting one half. For a binary
//! label this is exactly the ROC AUC; for a continuous label (WatchTime) it is the
//! concordance index. Users without an ordered pair are skipped.

use rayon::prelude::*;

use crate::paired::UserSums;

/// Fenwick tree of counts over score ranks.
struct Fenwick(Vec<u64>);

impl Fenwick {
    fn add(&mut self, mut i: usize) {
        i += 1;
        while i < self.0.len() {
            self.0[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// Count of inserted ranks `< i`.
    fn prefix(&self, mut i: usize) -> u64 {
        let mut s = 0;
        while i > 0 {
            s += self.0[i];
            i -= i & i.wrapping_neg();
        }
        s
    }
}

/// `(concordant + ties / 2, ordered pairs)` of one user's impressions, in O(n log n).
pub fn concordance(labels: &[f32], scores: &[f32]) -> (f64, u64) {
    let n = labels.len();
    assert_eq!(n, scores.len(), "one score per label");
    // Dense ranks of the scores (equal scores share a rank).
    let mut by_score: Vec<usize> = (0..n).collect();
    by_score.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank = vec![0usize; n];
    let mut r = 0;
    for w in 0..n {
        if w > 0 && scores[by_score[w]].total_cmp(&scores[by_score[w - 1]]).is_ne() {
            r += 1;
        }
        rank[by_score[w]] = r;
    }
    // Insert items by increasing label, a whole tie group at a time; each item meets
    // every earlier (strictly lower-label) item once.
    let mut by_label: Vec<usize> = (0..n).collect();
    by_label.sort_unstable_by(|&a, &b| labels[a].total_cmp(&labels[b]));
    let mut tree = Fenwick(vec![0; r + 2]);
    let (mut good, mut pairs, mut inserted) = (0f64, 0u64, 0u64);
    let mut g = 0;
    while g < n {
        let mut end = g + 1;
        while end < n && labels[by_label[end]].total_cmp(&labels[by_label[g]]).is_eq() {
            end += 1;
        }
        for &i in &by_label[g..end] {
            let below = tree.prefix(rank[i]);
            let tied = tree.prefix(rank[i] + 1) - below;
            good += below as f64 + 0.5 * tied as f64;
            pairs += inserted;
        }
        for &i in &by_label[g..end] {
            tree.add(rank[i]);
        }
        inserted += (end - g) as u64;
        g = end;
    }
    (good, pairs)
}

/// The AUC (concordance) of one user, `None` without an ordered pair.
pub fn auc(labels: &[f32], scores: &[f32]) -> Option<f64> {
    let (good, pairs) = concordance(labels, scores);
    (pairs > 0).then(|| good / pairs as f64)
}

/// A GAUC value and how many users and impressions it covers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gauc {
    pub value: f64,
    /// Users with at least one ordered pair.
    pub users: usize,
    /// Their impressions (the weights' sum).
    pub impressions: usize,
}

/// GAUC over impressions grouped by `users` (any order; one score and label each).
/// `None` when no user has an ordered pair.
pub fn gauc(users: &[u32], labels: &[f32], scores: &[f32]) -> Option<Gauc> {
    Gauc::from_sums(&gauc_sums(users, labels, scores))
}

/// GAUC's per-user terms `(AUC_u·n_u, n_u)` over the users with an ordered pair, for
/// paired comparisons ([`crate::paired`]).
pub fn gauc_sums(users: &[u32], labels: &[f32], scores: &[f32]) -> UserSums {
    // All of a user's impressions as one request: every pair counts.
    request_gauc_sums(users, users, labels, scores)
}

impl Gauc {
    fn from_sums(sums: &UserSums) -> Option<Gauc> {
        (!sums.is_empty()).then(|| Gauc {
            value: sums.value(),
            users: sums.len(),
            impressions: sums.den.iter().sum::<f64>() as usize,
        })
    }
}

/// GAUC over the pairs a ranker actually decides: per user, the concordance over pairs of
/// impressions shown in the same request (`requests`, any id unique across users or
/// not), weighted by the user's impressions; users with no such ordered pair skipped.
///
/// A top-K ranker orders one request's candidates and never compares two requests, while
/// [`gauc`] also counts every pair across a user's requests, which a state-dependent
/// offset in the score (fatigue, time of day) moves without changing any ranking. With one
/// request per user the two are equal.
pub fn request_gauc(users: &[u32], requests: &[u32], labels: &[f32], scores: &[f32]) -> Option<Gauc> {
    Gauc::from_sums(&request_gauc_sums(users, requests, labels, scores))
}

/// [`request_gauc`]'s per-user terms `(AUC_u·n_u, n_u)`, for paired comparisons.
pub fn request_gauc_sums(users: &[u32], requests: &[u32], labels: &[f32], scores: &[f32]) -> UserSums {
    assert!(
        users.len() == requests.len() && requests.len() == labels.len() && labels.len() == scores.len(),
        "aligned slices"
    );
    let mut order: Vec<usize> = (0..users.len()).collect();
    order.sort_by_key(|&i| (users[i], requests[i]));
    let groups: Vec<&[usize]> = order.chunk_by(|&a, &b| users[a] == users[b]).collect();
    let terms: Vec<(u32, f64, f64)> = groups
        .par_iter()
        .filter_map(|idx| {
            let (good, pairs) = idx
                .chunk_by(|&a, &b| requests[a] == requests[b])
                .map(|req| {
                    let l: Vec<f32> = req.iter().map(|&i| labels[i]).collect();
                    let s: Vec<f32> = req.iter().map(|&i| scores[i]).collect();
                    concordance(&l, &s)
                })
                .fold((0.0, 0u64), |(g, p), (g2, p2)| (g + g2, p + p2));
            let n = idx.len() as f64;
            (pairs > 0).then(|| (users[idx[0]], good / pairs as f64 * n, n))
        })
        .collect();
    UserSums::from_terms(terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(labels: &[f32], scores: &[f32]) -> Option<f64> {
        let (mut good, mut pairs) = (0f64, 0u64);
        for i in 0..labels.len() {
            for j in 0..labels.len() {
                if labels[i] > labels[j] {
                    pairs += 1;
                    good += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        (pairs > 0).then(|| good / pairs as f64)
    }

    #[test]
    fn hand_computed_example_with_ties_and_one_class_users() {
        // User 0: labels 1,0,0,1 and scores .9,.9,.1,.2 → pairs (pos,neg): (a,b) tie .5,
        // (a,c) 1, (d,b) 0, (d,c) 1 → 2.5 / 4 = 0.625. User 1: all zero → skipped.
        // User 2: play times 3,1,2 with scores 3,1,1 → pairs (3>1) 1, (3>2) 1, (2>1) tie .5 → 2.5/3.
        let users = [0, 0, 0, 0, 1, 1, 2, 2, 2];
        let labels = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 3.0, 1.0, 2.0];
        let scores = [0.9, 0.9, 0.1, 0.2, 0.5, 0.7, 3.0, 1.0, 1.0];
        let g = gauc(&users, &labels, &scores).unwrap();
        let expected = (0.625 * 4.0 + 2.5 / 3.0 * 3.0) / 7.0;
        assert!((g.value - expected).abs() < 1e-12, "{} vs {expected}", g.value);
        assert_eq!((g.users, g.impressions), (2, 7));
        assert_eq!(gauc(&[1, 1], &[0.0, 0.0], &[0.1, 0.2]), None);
    }

    #[test]
    fn perfect_and_reversed() {
        let labels: Vec<f32> = (0..50).map(|i| (i % 7) as f32).collect();
        let users = vec![3u32; 50];
        let g = gauc(&users, &labels, &labels).unwrap();
        assert_eq!(g.value, 1.0);
        let rev: Vec<f32> = labels.iter().map(|x| -x).collect();
        assert_eq!(gauc(&users, &labels, &rev).unwrap().value, 0.0);
    }

    #[test]
    fn request_gauc_counts_only_pairs_within_a_request() {
        // User 0, two requests. Within each, the scores order the labels correctly; across
        // them every pair is wrong (request 1 has the higher labels, the lower scores).
        let users = [0, 0, 0, 0];
        let requests = [0, 0, 1, 1];
        let labels = [1.0, 2.0, 3.0, 4.0];
        let scores = [10.0, 11.0, 0.0, 1.0];
        let r = request_gauc(&users, &requests, &labels, &scores).unwrap();
        assert_eq!((r.value, r.users, r.impressions), (1.0, 1, 4));
        // All six pairs: two right, four wrong.
        assert!((gauc(&users, &labels, &scores).unwrap().value - 2.0 / 6.0).abs() < 1e-12);
        // Request ids may repeat across users; a user whose requests hold no ordered pair
        // is skipped.
        let r = request_gauc(
            &[0, 0, 1, 1],
            &[5, 5, 5, 6],
            &[1.0, 0.0, 1.0, 0.0],
            &[0.2, 0.4, 0.3, 0.1],
        );
        assert_eq!(r.map(|g| (g.value, g.users, g.impressions)), Some((0.0, 1, 2)));
    }

    proptest! {
        #[test]
        fn request_gauc_equals_brute_force_over_pairs_within_requests(
            data in proptest::collection::vec((0u32..4, 0u32..3, 0u8..4, 0u8..6), 1..120)
        ) {
            // (`gauc` is `request_gauc` with one request per user; `equals_brute_force`
            // checks that case, this one the split into requests.)
            let users: Vec<u32> = data.iter().map(|d| d.0).collect();
            let requests: Vec<u32> = data.iter().map(|d| d.1).collect();
            let labels: Vec<f32> = data.iter().map(|d| d.2 as f32).collect();
            let scores: Vec<f32> = data.iter().map(|d| d.3 as f32).collect();
            let (mut num, mut den) = (0.0, 0usize);
            for u in 0..4 {
                let idx: Vec<usize> = (0..users.len()).filter(|&i| users[i] == u).collect();
                let (mut good, mut pairs) = (0.0, 0u64);
                for &i in &idx {
                    for &j in &idx {
                        if requests[i] == requests[j] && labels[i] > labels[j] {
                            pairs += 1;
                            good += if scores[i] > scores[j] { 1.0 } else if scores[i] == scores[j] { 0.5 } else { 0.0 };
                        }
                    }
                }
                if pairs > 0 {
                    num += good / pairs as f64 * idx.len() as f64;
                    den += idx.len();
                }
            }
            match request_gauc(&users, &requests, &labels, &scores) {
                None => prop_assert_eq!(den, 0),
                Some(g) => {
                    prop_assert!((g.value - num / den as f64).abs() < 1e-9);
                    prop_assert_eq!(g.impressions, den);
                }
            }
        }

        #[test]
        fn request_gauc_ignores_a_per_request_offset(
            data in proptest::collection::vec((0u32..4, 0u32..3, 0u8..4, 0u8..6), 1..120),
            offsets in proptest::collection::vec(-50i32..50, 3)
        ) {
            // Moving every score of a request by the same amount changes no ranking.
            let users: Vec<u32> = data.iter().map(|d| d.0).collect();
            let requests: Vec<u32> = data.iter().map(|d| d.1).collect();
            let labels: Vec<f32> = data.iter().map(|d| d.2 as f32).collect();
            let scores: Vec<f32> = data.iter().map(|d| d.3 as f32).collect();
            let shifted: Vec<f32> = data.iter().map(|d| d.3 as f32 + offsets[d.1 as usize] as f32).collect();
            prop_assert_eq!(
                request_gauc(&users, &requests, &labels, &scores),
                request_gauc(&users, &requests, &labels, &shifted)
            );
        }

        #[test]
        fn equals_brute_force(data in proptest::collection::vec((0u32..5, 0u8..4, 0u8..6), 1..120), binary in any::<bool>()) {
            let users: Vec<u32> = data.iter().map(|d| d.0).collect();
            let labels: Vec<f32> = data.iter().map(|d| if binary { (d.1 % 2) as f32 } else { d.1 as f32 }).collect();
            let scores: Vec<f32> = data.iter().map(|d| d.2 as f32 * 0.5).collect();
            let (mut num, mut den) = (0.0, 0usize);
            for u in 0..5 {
                let idx: Vec<usize> = (0..users.len()).filter(|&i| users[i] == u).collect();
                let l: Vec<f32> = idx.iter().map(|&i| labels[i]).collect();
                let s: Vec<f32> = idx.iter().map(|&i| scores[i]).collect();
                if let Some(a) = brute(&l, &s) { num += a * idx.len() as f64; den += idx.len(); }
            }
            match gauc(&users, &labels, &scores) {
                None => prop_assert_eq!(den, 0),
                Some(g) => {
                    prop_assert!((g.value - num / den as f64).abs() < 1e-9);
                    prop_assert!((0.0..=1.0).contains(&g.value));
                }
            }
        }
    }
}
