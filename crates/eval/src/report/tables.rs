//! The reports as text: the terminal's tables and the Markdown of `results.md` (the
//! paper's Table 1 and Table 2 layouts, the paired comparisons, the fidelity checks).

use mmrf_data::Signal;

use crate::abtest::{AbReport, METRICS};
use crate::fidelity::FidelityReport;
use crate::offline::{Comparison, OfflineReport};

/// A per-signal table of one method's offline metrics, for the terminal.
pub fn offline_text(r: &OfflineReport) -> String {
    let mut s = format!(
        "{} on {} ({} impressions, tau {}, cap {})\n{:<10} {:>7} {:>9} {:>10} {:>23} {:>9} {:>10}\n",
        r.method, r.split, r.impressions, r.tau, r.cap, "signal", "GAUC", "in-req.", "NCIS", "95% CI", "ESS", "logged"
    );
    for sig in Signal::ALL {
        let (name, Some(m)) = (sig.name(), r.signals.get(sig.name())) else {
            continue;
        };
        let f = |v: Option<f64>| v.map_or("-".to_string(), |g| format!("{g:.4}"));
        s += &format!(
            "{:<10} {:>7} {:>9} {:>10.4} [{:>10.4}, {:>10.4}] {:>9.0} {:>10.4}\n",
            name,
            f(m.gauc),
            f(m.gauc_within_request),
            m.ncis,
            m.ncis_ci[0],
            m.ncis_ci[1],
            m.ess,
            m.logged
        );
    }
    s += "(in-req.: GAUC over pairs within one request only, the order top-K ranking decides)\n";
    if let Some(a) = r.critic_alignment {
        s += &format!(
            "the ranking actor against the WatchTime critic's best action on {} held-out requests (a fixed eighth): mean cosine {:.4}, 1st percentile {:.4}\n",
            a.requests, a.mean, a.p01
        );
    }
    if let Some(c) = r.collaboration_sensitivity {
        s += &format!(
            "the ranking with the main actor's partners taken from another request, on the same requests: pair agreement {:.4} (1st percentile {:.4}; 1: collaboration changes no ranking)\n",
            c.mean, c.p01
        );
    }
    if let Some(u) = r.uncertainty {
        s += &format!(
            "eq. 6's factor exp(λ·KL) over the run's {} simulated labels: {:.1} % outside [0.99, 1.01]\n",
            u.labels,
            100.0 * u.outside_099_101
        );
    }
    s
}

/// WatchTime GAUC split by which pairs it counts: all of a user's pairs (Table 1's), and
/// only those within one request, the order a top-K ranker decides. The best of each
/// column is bold, the second marked `*`. Beside them, for the actor-critic methods, how
/// closely the ranking actor follows the WatchTime critic ([`OfflineReport::critic_alignment`]).
pub fn gauc_split_table(offline: &[OfflineReport]) -> String {
    let mut s = String::from(
        "### WatchTime GAUC: all of a user's pairs, and pairs within one request\n\n\
Table 1's GAUC also compares impressions from different requests of a user, which no ranking decision does: a score offset that follows the state (fatigue, time of day) moves it without changing any top-K. The second column counts only pairs shown in the same request. The third, for the actor-critic methods with a linear critic: the mean cosine of the ranking actor's action to the WatchTime critic's best action on the held-out requests (a fixed eighth of them); near 1, the method ranks by what that critic values, whatever feeds its actor. The fourth, for the methods whose actors communicate: the share of candidate pairs the ranking orders alike when the main actor's partners (their actions and views) come from another request; 1, collaboration changes no ranking.\n\n\
| Method | GAUC, all pairs | GAUC, within a request | actor · WatchTime critic (cosine) | ranking with others' partners (pair agreement) |\n|---|---:|---:|---:|---:|\n",
    );
    let wt = |r: &OfflineReport| r.signals.get("WatchTime").copied();
    let all: Vec<Option<f64>> = offline.iter().map(|r| wt(r).and_then(|m| m.gauc)).collect();
    let within: Vec<Option<f64>> = offline
        .iter()
        .map(|r| wt(r).and_then(|m| m.gauc_within_request))
        .collect();
    let (ma, mw) = (marks(&all, false), marks(&within, false));
    for (i, r) in offline.iter().enumerate() {
        let cosine = r.critic_alignment.map_or("–".to_string(), |a| format!("{:.4}", a.mean));
        let agreement = r
            .collaboration_sensitivity
            .map_or("–".to_string(), |a| format!("{:.4}", a.mean));
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            r.method,
            cell(all[i], ma[i], 4),
            cell(within[i], mw[i], 4),
            cosine,
            agreement
        );
    }
    s
}

// Table 1 (methods × signals × {GAUC, NCIS}): the best value of each column is bold and
// the second marked `*`. Higher is better except for Hate, a cost, where lower is better
// for both GAUC (a good ranker puts hated videos low) and NCIS.

fn marks(values: &[Option<f64>], lower_better: bool) -> Vec<&'static str> {
    let mut idx: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].is_some_and(f64::is_finite))
        .collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (values[a].unwrap_or(0.0), values[b].unwrap_or(0.0));
        if lower_better {
            x.total_cmp(&y)
        } else {
            y.total_cmp(&x)
        }
    });
    let mut m = vec![""; values.len()];
    if values.len() > 1 {
        if let Some(&i) = idx.first() {
            m[i] = "best";
        }
        if let Some(&i) = idx.get(1) {
            m[i] = "second";
        }
    }
    m
}

fn cell(v: Option<f64>, mark: &str, digits: usize) -> String {
    match v {
        None => "–".into(),
        Some(v) => {
            let t = format!("{v:.digits$}");
            match mark {
                "best" => format!("**{t}**"),
                "second" => format!("{t}*"),
                _ => t,
            }
        }
    }
}

/// `value [lo, hi]` of a difference, signed, then `mark` when its interval excludes 0 and
/// `blank` otherwise.
fn difference(d: &crate::Difference, digits: usize, mark: &str, blank: &str) -> String {
    format!(
        "{:+.digits$} [{:+.digits$}, {:+.digits$}]{}",
        d.value,
        d.ci[0],
        d.ci[1],
        if d.significant() { mark } else { blank }
    )
}

/// `a` against `b` per signal, for the terminal: the differences `a − b` of GAUC and NCIS
/// with their paired 95 % intervals over users (`*`: the interval excludes 0).
pub fn comparison_text(a: &str, b: &str, c: &std::collections::BTreeMap<String, Comparison>) -> String {
    let mut s = format!(
        "{a} − {b}, paired over users\n{:<10} {:>30} {:>30} {:>36}\n",
        "signal", "GAUC difference [95% CI]", "in-req. GAUC difference", "NCIS difference [95% CI]"
    );
    let gauc = |d: Option<&crate::Difference>| d.map_or("-".into(), |d| difference(d, 4, "*", " "));
    for sig in Signal::ALL {
        let Some(x) = c.get(sig.name()) else { continue };
        s += &format!(
            "{:<10} {:>30} {:>30} {:>36}\n",
            sig.name(),
            gauc(x.gauc.as_ref()),
            gauc(x.gauc_within_request.as_ref()),
            difference(&x.ncis, 5, "*", " ")
        );
    }
    s
}

/// `focus` against every other method on the same impressions, paired over users
/// ([`crate::offline::compare`]): the WatchTime differences with their 95 % intervals, and
/// over all fourteen figures (seven signals × GAUC, NCIS) how many put `focus` ahead or
/// behind with an interval that excludes zero. `comparisons` is keyed by the other
/// method, then by signal; rows follow `order`.
pub fn paired_table(
    focus: &str,
    comparisons: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, Comparison>>,
    order: &[OfflineReport],
) -> String {
    let mut s = format!(
        "### {focus} against each method on the same held-out impressions (paired bootstrap over users)\n\n\
         | Method | WatchTime GAUC: {focus} − method [95 % CI] | WatchTime GAUC within a request: {focus} − method | WatchTime NCIS: {focus} − method [95 % CI] | figures {focus} leads / trails (of 14: GAUC and NCIS) |\n|---|---:|---:|---:|---:|\n"
    );
    let diff = |d: &crate::Difference, digits: usize| difference(d, digits, " ✓", "");
    for r in order {
        let Some(c) = comparisons.get(&r.method) else {
            continue;
        };
        let (mut leads, mut trails) = (0, 0);
        for sig in Signal::ALL {
            let Some(x) = c.get(sig.name()) else { continue };
            for d in x.gauc.iter().chain(std::iter::once(&x.ncis)) {
                // Hate is a cost: a lower figure leads.
                let ahead = if sig == Signal::Hate {
                    d.ci[1] < 0.0
                } else {
                    d.ci[0] > 0.0
                };
                let behind = if sig == Signal::Hate {
                    d.ci[0] > 0.0
                } else {
                    d.ci[1] < 0.0
                };
                leads += usize::from(ahead);
                trails += usize::from(behind);
            }
        }
        let wt = c.get(Signal::WatchTime.name());
        s += &format!(
            "| {} | {} | {} | {} | {leads} / {trails} |\n",
            r.method,
            wt.and_then(|x| x.gauc.as_ref()).map_or("–".into(), |d| diff(d, 4)),
            wt.and_then(|x| x.gauc_within_request.as_ref())
                .map_or("–".into(), |d| diff(d, 4)),
            wt.map_or("–".into(), |x| diff(&x.ncis, 2)),
        );
    }
    s += "\n✓: the interval excludes 0. Both methods are scored on the same impressions, so which users are held out moves them alike; the paired interval is that of the difference itself. It covers the held-out users only, not the training run's own randomness: retraining with another seed moves a method's figures too (`--seeds N` measures both).\n";
    s
}

/// Table 1 in the paper's layout.
pub fn table1(offline: &[OfflineReport]) -> String {
    let mut s = String::from("### Table 1: offline GAUC and NCIS per signal (held-out test split)\n\n| Method |");
    for sig in Signal::ALL {
        let arrow = if sig == Signal::Hate { "↓" } else { "↑" };
        s += &format!(" {}{arrow} GAUC | {}{arrow} NCIS |", sig.name(), sig.name());
    }
    s += "\n|---|";
    s += &"---:|".repeat(2 * Signal::ALL.len());
    s += "\n";
    let cols: Vec<(Vec<&str>, Vec<&str>)> = Signal::ALL
        .iter()
        .map(|sig| {
            let g: Vec<Option<f64>> = offline
                .iter()
                .map(|r| r.signals.get(sig.name()).and_then(|m| m.gauc))
                .collect();
            let n: Vec<Option<f64>> = offline
                .iter()
                .map(|r| r.signals.get(sig.name()).map(|m| m.ncis))
                .collect();
            (marks(&g, *sig == Signal::Hate), marks(&n, *sig == Signal::Hate))
        })
        .collect();
    for (i, r) in offline.iter().enumerate() {
        s += &format!("| {} |", r.method);
        for (k, sig) in Signal::ALL.iter().enumerate() {
            let m = r.signals.get(sig.name());
            let digits = if *sig == Signal::WatchTime { 3 } else { 5 };
            s += &format!(
                " {} | {} |",
                cell(m.and_then(|m| m.gauc), cols[k].0[i], 4),
                cell(m.map(|m| m.ncis), cols[k].1[i], digits)
            );
        }
        s += "\n";
    }
    if let Some(r) = offline.first() {
        s += &format!(
            "\nNCIS per impression (WatchTime in seconds), target softmax(score/τ) with τ matched per method to π_β's entropy, cap c = {}, π_β from BC; {} impressions.\n",
            r.cap, r.impressions
        );
    }
    s
}

/// Table 2: the online A/B test.
pub fn table2(ab: &AbReport) -> String {
    let mut s = format!(
        "### Table 2: online A/B test in the world ({} days, paired users; control: {})\n\n| Arm | sessions |",
        ab.days, ab.control
    );
    for m in METRICS {
        s += &format!(" {m} / session | lift |");
    }
    s += "\n|---|---:|";
    s += &"---:|---:|".repeat(METRICS.len());
    s += "\n";
    for a in &ab.arms {
        s += &format!("| {} | {} |", a.name, a.sessions);
        for m in METRICS {
            let v = a.per_session(m).map_or(f64::NAN, |e| e.mean);
            let digits = if m == "watch_time" || m == "depth" { 2 } else { 4 };
            let lift = match a.lift(m) {
                Some(l) if a.name != ab.control => format!(
                    "{:+.2}% [{:+.2}, {:+.2}]{}",
                    100.0 * l.mean,
                    100.0 * l.ci[0],
                    100.0 * l.ci[1],
                    if l.significant() { " ✓" } else { "" }
                ),
                _ => "–".into(),
            };
            s += &format!(" {v:.digits$} | {lift} |");
        }
        s += "\n";
    }
    s += "\nLifts are relative to the control with paired bootstrap 95 % intervals over users; ✓: the interval excludes 0.\n";
    s
}

/// The paper's Table 1 on KuaiRand-1K: per method, (GAUC, NCIS) for Click, Like, Follow,
/// Comment, Hate, LongView, WatchTime. NCIS in the paper's units (Click ×1e-1, Like ×1e-2,
/// Follow ×1e-4, Comment ×1e-3, Hate ×1e-4, LongView ×1e-1, WatchTime in seconds).
pub const PAPER_TABLE1_KUAIRAND_1K: [(&str, [(f64, f64); 7]); 10] = [
    (
        "bc",
        [
            (0.6555, 5.127),
            (0.6586, 1.100),
            (0.6472, 6.170),
            (0.6733, 3.084),
            (0.6549, 3.313),
            (0.6130, 2.771),
            (0.6128, 10.74),
        ],
    ),
    (
        "wide-deep",
        [
            (0.6603, 5.323),
            (0.6583, 1.135),
            (0.6493, 6.175),
            (0.6914, 3.192),
            (0.6886, 3.020),
            (0.6240, 2.785),
            (0.6138, 10.71),
        ],
    ),
    (
        "deepfm",
        [
            (0.6624, 5.368),
            (0.6317, 1.086),
            (0.6400, 6.022),
            (0.6807, 3.191),
            (0.6697, 3.133),
            (0.6533, 2.933),
            (0.6537, 10.85),
        ],
    ),
    (
        "pareto",
        [
            (0.6590, 5.227),
            (0.6905, 1.166),
            (0.7056, 6.318),
            (0.6922, 3.275),
            (0.7534, 2.485),
            (0.6692, 3.004),
            (0.5947, 9.79),
        ],
    ),
    (
        "tscac",
        [
            (0.6633, 5.249),
            (0.7002, 1.320),
            (0.6816, 6.281),
            (0.7253, 3.519),
            (0.7135, 2.861),
            (0.6616, 2.987),
            (0.6650, 11.04),
        ],
    ),
    (
        "massa",
        [
            (0.6238, 4.818),
            (0.6927, 1.272),
            (0.6943, 6.297),
            (0.7057, 3.301),
            (0.6126, 3.528),
            (0.6704, 3.118),
            (0.6679, 11.29),
        ],
    ),
    (
        "mmrf-co",
        [
            (0.6588, 5.328),
            (0.6841, 1.256),
            (0.6909, 6.275),
            (0.6747, 3.146),
            (0.7301, 2.811),
            (0.6734, 3.235),
            (0.6407, 11.03),
        ],
    ),
    (
        "mmrf-da",
        [
            (0.6601, 5.330),
            (0.6975, 1.308),
            (0.6964, 6.303),
            (0.7139, 3.383),
            (0.7104, 2.873),
            (0.6695, 2.992),
            (0.6744, 11.45),
        ],
    ),
    (
        "mmrf-ns",
        [
            (0.6620, 5.347),
            (0.6959, 1.312),
            (0.6992, 6.311),
            (0.7139, 3.383),
            (0.7302, 2.736),
            (0.6590, 2.973),
            (0.6711, 11.35),
        ],
    ),
    (
        "mmrf",
        [
            (0.6668, 5.370),
            (0.6837, 1.170),
            (0.7069, 6.344),
            (0.7274, 3.597),
            (0.7316, 2.795),
            (0.6587, 2.972),
            (0.6833, 11.54),
        ],
    ),
];

/// The paper's Table 2: online lifts over LTR (WatchTime, Depth, Follow, Comment).
pub const PAPER_TABLE2: [(&str, [f64; 4]); 2] = [
    ("tscac", [0.0032, 0.0031, 0.0069, 0.0042]),
    ("mmrf", [0.0055, 0.0054, 0.0145, 0.0128]),
];

/// The paper's own numbers beside ours: WatchTime GAUC and NCIS per method (the paper's
/// KuaiRand-1K column; absolute values differ with the data, orderings compare), and the
/// online lifts over LTR.
pub fn paper_reference(offline: &[OfflineReport], online: Option<&AbReport>) -> String {
    let mut s = String::from(
        "### The paper's numbers beside ours (for reference)

\
Offline WatchTime (the paper: KuaiRand-1K, Table 1; ours: this data). Absolute values are not comparable across data; the order of the methods is.

\
| Method | GAUC (ours) | GAUC (paper) | NCIS s (ours) | NCIS s (paper) |\n|---|---:|---:|---:|---:|\n",
    );
    let wt = Signal::ALL.len() - 1;
    for (name, row) in PAPER_TABLE1_KUAIRAND_1K {
        let ours = offline
            .iter()
            .find(|r| r.method == name)
            .and_then(|r| r.signals.get("WatchTime"));
        let f = |v: Option<f64>, d: usize| v.map_or("–".to_string(), |v| format!("{v:.d$}"));
        s += &format!(
            "| {name} | {} | {:.4} | {} | {:.2} |\n",
            f(ours.and_then(|m| m.gauc), 4),
            row[wt].0,
            f(ours.map(|m| m.ncis), 2),
            row[wt].1
        );
    }
    s += "\nOnline lift over LTR (the paper: one day on the platform, Table 2; ours: the world).\n\n| Arm | WatchTime (ours) | WatchTime (paper) | Depth (ours) | Depth (paper) | Follow (ours) | Follow (paper) | Comment (ours) | Comment (paper) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (name, paper) in PAPER_TABLE2 {
        s += &format!("| {name} |");
        for (k, m) in ["watch_time", "depth", "follow", "comment"].iter().enumerate() {
            let ours = online
                .and_then(|o| o.arms.iter().find(|a| a.name == name))
                .and_then(|a| a.lift(m))
                .map_or("–".to_string(), |l| format!("{:+.2}%", 100.0 * l.mean));
            s += &format!(" {ours} | {:+.2}% |", 100.0 * paper[k]);
        }
        s += "\n";
    }
    s
}

/// The NCIS-fidelity table.
pub fn fidelity_table(title: &str, f: &FidelityReport) -> String {
    let mut s = format!(
        "### {title}\n\nEach cell: with the true π_β / with BC's π_β. \"Per shown video\" is the truth over all K videos of a request, \"first draw\" over the first alone: one draw from the policy's softmax, the value NCIS's per-impression propensities describe.\n\n| Signal | Spearman, per shown video | Spearman, first draw | mean rel. error, per shown video | mean rel. error, first draw |\n|---|---:|---:|---:|---:|\n",
    );
    for x in &f.signals {
        s += &format!(
            "| {} | {:.3} / {:.3} | {:.3} / {:.3} | {:.1}% / {:.1}% | {:.1}% / {:.1}% |\n",
            x.signal,
            x.spearman_true,
            x.spearman_bc,
            x.spearman_first_true,
            x.spearman_first_bc,
            100.0 * x.mean_rel_error_true,
            100.0 * x.mean_rel_error_bc,
            100.0 * x.mean_rel_error_first_true,
            100.0 * x.mean_rel_error_first_bc
        );
    }
    s += "\n| Policy | τ | WatchTime per shown video | first draw | NCIS (true π_β) | NCIS (BC π_β) | SNIPS, uncapped (true π_β / BC π_β) |\n|---|---:|---:|---:|---:|---:|---:|\n";
    for r in f.rows.iter().filter(|r| r.signal == "WatchTime") {
        s += &format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} [{:.3}, {:.3}] | {:.3} [{:.3}, {:.3}] | {:.3} / {:.3} |\n",
            r.policy,
            r.tau,
            r.online,
            r.online_first,
            r.ncis_true,
            r.ncis_true_ci[0],
            r.ncis_true_ci[1],
            r.ncis_bc,
            r.ncis_bc_ci[0],
            r.ncis_bc_ci[1],
            r.snips_true,
            r.snips_bc
        );
    }
    s
}

/// `focus` against each method by the true WatchTime of their stochastic policies, paired
/// over users (`✓`: the interval excludes 0).
pub fn truth_paired_table(focus: &str, d: &[crate::fidelity::TruthDifference]) -> String {
    let mut s = format!(
        "### {focus} against each method by the truth (the same stochastic policies run in the world, paired bootstrap over users)\n\n| Method | true WatchTime of the first draw: {focus} − method [95 % CI] | true WatchTime per shown video: {focus} − method [95 % CI] |\n|---|---:|---:|\n"
    );
    for x in d {
        s += &format!(
            "| {} | {} | {} |\n",
            x.policy,
            difference(&x.first_draw, 3, " ✓", ""),
            difference(&x.per_video, 3, " ✓", "")
        );
    }
    s
}

/// One policy's true values (per shown video and of the first draw) beside its NCIS
/// (`mmrf eval --truth`).
pub fn truth_text(f: &FidelityReport) -> String {
    let mut s = String::from(
        "\nthe same policy run in the world over the test period: the true value per shown video and of the first draw (the first video of each request, one draw from the policy's softmax, which NCIS's propensities describe); NCIS's error against the first draw, and the estimate with the ratios uncapped\n",
    );
    for r in &f.rows {
        s += &format!(
            "  {:<9}  per shown video {:>9.4}  first draw {:>9.4}  NCIS (BC pi_beta) {:>9.4} ({:+.1}%)  NCIS (true pi_beta) {:>9.4} ({:+.1}%)  uncapped SNIPS (true pi_beta) {:>9.4}\n",
            r.signal,
            r.online,
            r.online_first,
            r.ncis_bc,
            100.0 * (r.ncis_bc / r.online_first - 1.0),
            r.ncis_true,
            100.0 * (r.ncis_true / r.online_first - 1.0),
            r.snips_true
        );
    }
    s
}

/// The simulator-against-the-world table (sample selection bias).
pub fn simulator_table(r: &crate::ssb::SsbReport) -> String {
    let mut s = format!(
        "### Feedback simulator against the world ({} held-out requests, {} draws per item)\n\n| Signal | Pearson, shown | Pearson, never shown | RMSE, shown | RMSE, never shown | never shown: mean predicted / label / true |\n|---|---:|---:|---:|---:|---:|\n",
        r.requests, r.samples
    );
    for x in &r.signals {
        s += &format!(
            "| {} | {:.3} | {:.3} | {:.4} | {:.4} | {:.4} / {:.4} / {:.4} |\n",
            x.signal,
            x.impressed.pearson,
            x.non_impressed.pearson,
            x.impressed.rmse,
            x.non_impressed.rmse,
            x.non_impressed.mean_predicted,
            x.non_impressed.mean_label,
            x.non_impressed.mean_true
        );
    }
    s += "\nRates for the binary signals, seconds of play for WatchTime (the simulator predicts play time only up to its cap, `sim_watch_cap_s`). The label is what the agents train on for a non-impression sample: the two heads' mean discounted by their disagreement, `mean(r, r')·exp(λ·KL)` (eq. 6); where it sits above the truth, the discount has not removed the simulator's optimism about the items the logger never showed. The truth is the world's expected feedback for the user on that day at the start of a visit.\n";
    s
}
