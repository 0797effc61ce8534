//! # mmrf-metrics — the metric definitions
//!
//! `DESIGN.md` §6, one implementation each, shared by training (the simulator's fit) and
//! evaluation (every method alike):
//!
//! - [`gauc()`]: per-user AUC of scores against a label (concordance for a continuous label
//!   such as play time), weighted by the user's impressions; O(n log n) per user, parallel;
//!   and [`request_gauc`], the same over pairs within one request only (what a top-K
//!   ranker decides);
//! - [`ope`]: off-policy estimates of a target policy's per-impression value from logged
//!   impressions: NCIS (normalised capped importance sampling), plain IPS and SNIPS, with
//!   the effective sample size and a bootstrap confidence interval over users;
//! - [`paired`]: the difference of two methods' GAUC or NCIS on the same impressions, with
//!   a paired bootstrap interval over users.

pub mod gauc;
pub mod ope;
pub mod paired;

pub use gauc::{auc, gauc, gauc_sums, request_gauc, request_gauc_sums, Gauc};
pub use ope::{ncis, ncis_with_sums, OffPolicy, OpeConfig, MAX_BOOTSTRAP};
pub use paired::{paired_difference, Difference, UserSums};
