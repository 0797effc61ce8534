//! Paired comparison of two methods scored on the same held-out impressions.
//!
//! GAUC and NCIS are both ratios of per-user sums — GAUC is `Σ_u AUC_u·n_u / Σ_u n_u`, NCIS
//! is `Σ_u Σ w·r / Σ_u Σ w` — so one `(numerator, denominator)` pair per user fixes a
//! method's figure ([`UserSums`]). Two methods scored on the same impressions share their
//! users, and the difference of their figures is resampled by drawing users once for both
//! (a paired bootstrap over users, the independent units): which users happen to be held
//! out moves both methods alike and cancels, so the interval is that of the difference
//! itself — much narrower than the two methods' own intervals suggest when they overlap.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One `(numerator, denominator)` per user, in increasing user order; the figure is
/// `Σ numerator / Σ denominator`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserSums {
    pub users: Vec<u32>,
    pub num: Vec<f64>,
    pub den: Vec<f64>,
}

impl UserSums {
    /// From `(user, numerator, denominator)` terms in any order; a user's terms are added.
    pub fn from_terms(mut terms: Vec<(u32, f64, f64)>) -> UserSums {
        terms.sort_by_key(|t| t.0);
        let mut s = UserSums::default();
        for (u, n, d) in terms {
            if s.users.last() == Some(&u) {
                *s.num.last_mut().expect("same length") += n;
                *s.den.last_mut().expect("same length") += d;
            } else {
                s.users.push(u);
                s.num.push(n);
                s.den.push(d);
            }
        }
        s
    }

    /// `Σ numerator / Σ denominator` (0 without weight).
    pub fn value(&self) -> f64 {
        ratio(self.num.iter().sum(), self.den.iter().sum())
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The figure over `draws` bootstrap resamples of the users (with replacement), sorted.
    pub fn bootstrap(&self, draws: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = self.len();
        let mut v: Vec<f64> = (0..draws)
            .map(|_| {
                let (mut num, mut den) = (0.0, 0.0);
                for _ in 0..n {
                    let i = rng.random_range(0..n);
                    num += self.num[i];
                    den += self.den[i];
                }
                ratio(num, den)
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The 2.5 % and 97.5 % points of sorted resamples (`fallback` when there are none).
pub fn interval(sorted: &[f64], fallback: f64) -> [f64; 2] {
    let pct = |q: f64| {
        if sorted.is_empty() {
            fallback
        } else {
            sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
        }
    };
    [pct(0.025), pct(0.975)]
}

/// Method A's figure minus method B's, with its paired bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Difference {
    /// `A − B` on all users.
    pub value: f64,
    /// 95 % paired bootstrap interval over users.
    pub ci: [f64; 2],
    /// Share of the resamples in which A is ahead (`A − B > 0`).
    pub ahead: f64,
}

impl Difference {
    /// Whether the interval excludes zero.
    pub fn significant(&self) -> bool {
        self.ci[0] > 0.0 || self.ci[1] < 0.0
    }
}

/// `A − B` for two methods' sums over the same users, resampling users once for both.
///
/// Errors when the two were not computed on the same users.
pub fn paired_difference(a: &UserSums, b: &UserSums, draws: usize, seed: u64) -> Result<Difference, String> {
    if a.users != b.users {
        return Err(format!(
            "the two methods were not scored on the same users ({} and {} users)",
            a.len(),
            b.len()
        ));
    }
    let n = a.len();
    let value = a.value() - b.value();
    if n == 0 {
        return Ok(Difference {
            value,
            ci: [value, value],
            ahead: 0.0,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut diffs: Vec<f64> = (0..draws)
        .map(|_| {
            let (mut an, mut ad, mut bn, mut bd) = (0.0, 0.0, 0.0, 0.0);
            for _ in 0..n {
                let i = rng.random_range(0..n);
                an += a.num[i];
                ad += a.den[i];
                bn += b.num[i];
                bd += b.den[i];
            }
            ratio(an, ad) - ratio(bn, bd)
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let ahead = if diffs.is_empty() {
        f64::from(u8::from(value > 0.0))
    } else {
        diffs.iter().filter(|&&d| d > 0.0).count() as f64 / diffs.len() as f64
    };
    Ok(Difference {
        value,
        ci: interval(&diffs, value),
        ahead,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sums(terms: &[(u32, f64, f64)]) -> UserSums {
        UserSums::from_terms(terms.to_vec())
    }

    #[test]
    fn terms_of_one_user_are_added_and_users_sorted() {
        let s = sums(&[(3, 1.0, 2.0), (1, 4.0, 4.0), (3, 2.0, 1.0)]);
        assert_eq!(s.users, vec![1, 3]);
        assert_eq!(s.num, vec![4.0, 3.0]);
        assert_eq!(s.den, vec![4.0, 3.0]);
        assert!((s.value() - 7.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn a_shared_user_effect_cancels_in_the_paired_interval() {
        // Users differ a lot (their level ranges over 0..100), and A is B plus 0.1 for
        // every user: each method's own interval is wide, the difference's is a point.
        let b: Vec<(u32, f64, f64)> = (0..200).map(|u| (u, (u % 100) as f64, 1.0)).collect();
        let a: Vec<(u32, f64, f64)> = b.iter().map(|&(u, n, d)| (u, n + 0.1, d)).collect();
        let (a, b) = (sums(&a), sums(&b));
        let own = interval(&b.bootstrap(300, 1), b.value());
        assert!(own[1] - own[0] > 5.0, "{own:?}");
        let d = paired_difference(&a, &b, 300, 1).unwrap();
        assert!((d.value - 0.1).abs() < 1e-9);
        assert!((d.ci[0] - 0.1).abs() < 1e-9 && (d.ci[1] - 0.1).abs() < 1e-9, "{d:?}");
        assert!(d.significant() && d.ahead == 1.0);
        let back = paired_difference(&b, &a, 300, 1).unwrap();
        assert!((back.value + 0.1).abs() < 1e-9 && back.ahead == 0.0);
    }

    #[test]
    fn noise_without_a_shift_is_not_significant() {
        // A and B differ by user-level noise of mean zero.
        let b: Vec<(u32, f64, f64)> = (0..400).map(|u| (u, 10.0, 1.0)).collect();
        let a: Vec<(u32, f64, f64)> = (0..400)
            .map(|u| (u, 10.0 + if u % 2 == 0 { 1.0 } else { -1.0 }, 1.0))
            .collect();
        let d = paired_difference(&sums(&a), &sums(&b), 500, 7).unwrap();
        assert!(d.value.abs() < 1e-9 && !d.significant(), "{d:?}");
        assert!(d.ahead > 0.2 && d.ahead < 0.8, "{d:?}");
    }

    #[test]
    fn different_users_are_an_error() {
        let err = paired_difference(&sums(&[(1, 1.0, 1.0)]), &sums(&[(2, 1.0, 1.0)]), 10, 0).unwrap_err();
        assert!(err.contains("same users"), "{err}");
    }

    proptest! {
        #[test]
        fn the_interval_holds_the_difference_and_flips_with_the_order(
            data in proptest::collection::vec((0u32..30, 0.0f64..5.0, 0.0f64..5.0, 0.1f64..2.0), 1..120)
        ) {
            let a = sums(&data.iter().map(|d| (d.0, d.1 * d.3, d.3)).collect::<Vec<_>>());
            let b = sums(&data.iter().map(|d| (d.0, d.2 * d.3, d.3)).collect::<Vec<_>>());
            let ab = paired_difference(&a, &b, 200, 3).unwrap();
            let ba = paired_difference(&b, &a, 200, 3).unwrap();
            prop_assert!((ab.value + ba.value).abs() < 1e-9);
            prop_assert!((ab.ci[0] + ba.ci[1]).abs() < 1e-9 && (ab.ci[1] + ba.ci[0]).abs() < 1e-9);
            prop_assert!(ab.ci[0] <= ab.ci[1]);
            prop_assert!((0.0..=1.0).contains(&ab.ahead));
        }
    }
}
