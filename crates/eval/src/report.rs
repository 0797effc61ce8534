//! Reports: terminal text, the paper's Table-1 layout in Markdown, and PNG plots.

use crate::offline::OfflineReport;

/// A per-signal table of one method's offline metrics, for the terminal.
pub fn offline_text(r: &OfflineReport) -> String {
    let mut s = format!(
        "{} on {} ({} impressions, tau {}, cap {})\n{:<10} {:>7} {:>10} {:>23} {:>9} {:>10}\n",
        r.method, r.split, r.impressions, r.tau, r.cap, "signal", "GAUC", "NCIS", "95% CI", "ESS", "logged"
    );
    for (name, m) in &r.signals {
        let g = m.gauc.map_or("-".to_string(), |g| format!("{g:.4}"));
        s += &format!(
            "{:<10} {:>7} {:>10.4} [{:>10.4}, {:>10.4}] {:>9.0} {:>10.4}\n",
            name, g, m.ncis, m.ncis_ci[0], m.ncis_ci[1], m.ess, m.logged
        );
    }
    s
}
