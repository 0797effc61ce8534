//! # mmrf-eval — evaluation of trained methods
//!
//! Every method is measured the same way (`DESIGN.md` §6), with the metric definitions of
//! [`mmrf_metrics`] (re-exported here):
//!
//! - [`offline`]: a trained method scored on a held-out split: per-signal GAUC and NCIS
//!   (π_β from BC or the world's truth), and the scored-impressions dump;
//! - [`abtest`]: the simulated online A/B test with paired arms, CIs and per-day lifts;
//! - [`fidelity`]: NCIS against the world's true online values;
//! - [`oracle`]: the world's myopic oracle scored like a method (the ceiling of Table 1);
//! - [`report`]: Table 1 / Table 2 / fidelity as Markdown, and PNG plots;
//! - [`ssb`]: the feedback simulator against the world on shown and never-shown items.

pub mod abtest;
pub mod fidelity;
pub mod offline;
pub mod oracle;
pub mod report;
pub mod ssb;

pub use mmrf_metrics::{
    auc, gauc, gauc_sums, ncis, ncis_with_sums, ope, paired, paired_difference, request_gauc, request_gauc_sums,
    Difference, Gauc, OffPolicy, OpeConfig, UserSums,
};
