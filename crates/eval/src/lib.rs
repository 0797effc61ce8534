//! # mmrf-eval — offline evaluation
//!
//! The metric definitions of `DESIGN.md` §6, one implementation each, used by every
//! method alike:
//!
//! - [`gauc`]: per-user AUC of scores against a label (concordance for a continuous label
//!   such as play time), weighted by the user's impressions; O(n log n) per user, parallel;
//! - [`ope`]: off-policy estimates of a target policy's per-impression value from logged
//!   impressions: NCIS (normalised capped importance sampling), plain IPS and SNIPS, with
//!   the effective sample size and a bootstrap confidence interval over users;
//! - [`offline`]: a trained method scored on a held-out split: per-signal GAUC and NCIS,
//!   and the scored-impressions dump.

pub mod abtest;
pub mod fidelity;
pub mod gauc;
pub mod offline;
pub mod ope;
pub mod report;

pub use gauc::{auc, gauc, Gauc};
pub use ope::{ncis, OffPolicy, OpeConfig};
