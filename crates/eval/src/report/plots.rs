//! The reports as PNG plots (`plotters`): per-signal bars with intervals, online lifts,
//! the benchmark's figures and a run's learning curve.

use std::path::Path;

use mmrf_data::Signal;

use crate::abtest::AbReport;
use crate::offline::OfflineReport;

/// Find a TrueType font for plot labels: `MMRF_FONT`, else common system locations.
fn font() -> Option<Vec<u8>> {
    let mut paths: Vec<std::path::PathBuf> = std::env::var_os("MMRF_FONT").map(Into::into).into_iter().collect();
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/Library/Fonts/Arial.ttf",
        "C:\\Windows\\Fonts\\arial.ttf",
    ] {
        paths.push(p.into());
    }
    paths.iter().find_map(|p| std::fs::read(p).ok())
}

/// Which of the plots' palette colours a method gets, the same in every plot: the first
/// (a strong red) is `focus`'s alone, the others follow the methods' order.
fn colour_index(names: &[String], focus: &str, method: &str) -> usize {
    if method == focus {
        return 0;
    }
    let mut others = names.iter().filter(|n| n.as_str() != focus);
    1 + others.position(|n| n == method).unwrap_or(names.len())
}

/// One method's figures for [`signal_bars`]: per signal in [`Signal::ALL`] order, the
/// value and its interval, if any.
#[derive(Debug, Clone)]
pub struct BarRow {
    pub method: String,
    pub values: Vec<Option<(f64, Option<[f64; 2]>)>>,
}

/// Where a bar chart's value axis runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Axis {
    /// From zero (a mean such as NCIS).
    FromZero,
    /// Close around the values and their intervals, within the metric's own range (GAUC,
    /// whose differences are in the third digit, within [0, 1]).
    Within(f64, f64),
}

/// Table 1 as bars in `path`: one panel per signal, one bar per method (with its interval
/// where there is one), numbered, with a key in the free eighth panel; `focus` outlined.
pub fn signal_bars(
    path: &Path,
    metric: &str,
    rows: &[BarRow],
    axis: Axis,
    focus: &str,
) -> Result<std::path::PathBuf, String> {
    use plotters::prelude::*;
    register_font()?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let names: Vec<String> = rows.iter().map(|r| r.method.clone()).collect();
    let colour = |method: &str| Palette99::pick(colour_index(&names, focus, method));
    {
        let root = BitMapBackend::new(path, (1600, 1000)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((2, 4));
        for (s_i, (panel, sig)) in panels.iter().zip(Signal::ALL).enumerate() {
            let vals: Vec<Option<(f64, Option<[f64; 2]>)>> = rows
                .iter()
                .map(|r| r.values.get(s_i).copied().flatten().filter(|v| v.0.is_finite()))
                .collect();
            let ends = vals.iter().flatten().flat_map(|(v, ci)| {
                let [lo, hi] = ci.unwrap_or([*v, *v]);
                [*v, lo, hi]
            });
            let (min, max) = ends.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
            if !min.is_finite() {
                continue;
            }
            let (lo, hi) = match axis {
                Axis::FromZero => (0.0, max.max(1e-9) * 1.15),
                Axis::Within(floor, ceiling) => {
                    let (min, max) = (min.max(floor), max.min(ceiling));
                    let pad = (max - min).max(0.01) * 0.25;
                    ((min - pad).max(floor), (max + pad).min(ceiling))
                }
            };
            let n = rows.len().max(1);
            let arrow = if sig.higher_is_better() { "↑" } else { "↓" };
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{}{arrow} {metric}", sig.name()), ("sans-serif", 22))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(-0.5f64..n as f64 - 0.5, lo..hi)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n)
                .light_line_style(WHITE)
                .x_label_style(("sans-serif", 14))
                .x_label_formatter(&|x| {
                    // Bars are numbered; the last panel names them (the names do not
                    // fit under bars this narrow).
                    let i = x.round();
                    if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
                        return String::new();
                    }
                    format!("{}", i as usize + 1)
                })
                .draw()
                .map_err(|e| err(&e))?;
            for (i, v) in vals.iter().enumerate() {
                let Some((v, ci)) = v else { continue };
                let (x0, x1) = (i as f64 - 0.35, i as f64 + 0.35);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, lo), (x1, *v)],
                        colour(&names[i]).filled(),
                    )))
                    .map_err(|e| err(&e))?;
                if names[i] == focus {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x0, lo), (x1, *v)],
                            BLACK.stroke_width(3),
                        )))
                        .map_err(|e| err(&e))?;
                }
                if let Some([a, b]) = ci {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(i as f64, *a), (i as f64, *b)],
                            BLACK.stroke_width(2),
                        )))
                        .map_err(|e| err(&e))?;
                }
            }
        }
        // The key, in the panel the seven signals leave free.
        if let Some(key) = panels.get(Signal::ALL.len()) {
            let row = 34;
            for (i, name) in names.iter().enumerate() {
                let y = 40 + row * i as i32;
                let swatch = Rectangle::new([(30, y), (56, y + 22)], colour(name).filled());
                key.draw(&swatch).map_err(|e| err(&e))?;
                if name == focus {
                    key.draw(&Rectangle::new([(30, y), (56, y + 22)], BLACK.stroke_width(3)))
                        .map_err(|e| err(&e))?;
                }
                key.draw(&Text::new(
                    format!("{}  {name}", i + 1),
                    (68, y + 2),
                    ("sans-serif", 20),
                ))
                .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path.to_path_buf())
}

/// Register the plots' font (see [`font`]) once per process: plotters keeps it for the
/// program's life, so every plot after the first reuses it rather than reading and
/// leaking another copy of the file.
fn register_font() -> Result<(), String> {
    use plotters::prelude::FontStyle;
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = font().ok_or("no TrueType font found for plot labels; set MMRF_FONT to a .ttf file")?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| "the plot font could not be read".to_string())
        })
        .clone()
}

/// Table 2's WatchTime lift as bars in `path`: one bar per arm, `(name, mean, [lo, hi])`
/// as fractions (0.05 = +5 %), against `control`; `focus` outlined.
pub fn lift_bars(
    path: &Path,
    arms: &[(String, f64, [f64; 2])],
    control: &str,
    focus: &str,
) -> Result<std::path::PathBuf, String> {
    use plotters::prelude::*;
    register_font()?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let arms: Vec<&(String, f64, [f64; 2])> = arms.iter().filter(|a| a.1.is_finite()).collect();
    if arms.is_empty() {
        return Err("no arm has a lift to plot".into());
    }
    let names: Vec<String> = arms.iter().map(|a| a.0.clone()).collect();
    let ends = arms.iter().flat_map(|a| [a.1, a.2[0], a.2[1]]).map(|x| 100.0 * x);
    let (lo, hi) = ends.fold((0.0f64, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let pad = (hi - lo).max(1.0) * 0.1;
    let n = arms.len();
    {
        let root = BitMapBackend::new(path, (1000, 650)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Session WatchTime lift against {control} (%), mean and 95 % interval over seeds"),
                ("sans-serif", 22),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, lo - pad..hi + pad)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(n)
            .x_label_style(("sans-serif", 15))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                names.get(i as usize).cloned().unwrap_or_default()
            })
            .y_desc("lift (%)")
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (name, mean, ci)) in arms.iter().map(|a| (&a.0, a.1, a.2)).enumerate() {
            let (x0, x1) = (i as f64 - 0.35, i as f64 + 0.35);
            let c = Palette99::pick(colour_index(&names, focus, name));
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x1, 100.0 * mean)],
                    c.filled(),
                )))
                .map_err(|e| err(&e))?;
            if name == focus {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, 0.0), (x1, 100.0 * mean)],
                        BLACK.stroke_width(3),
                    )))
                    .map_err(|e| err(&e))?;
            }
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(i as f64, 100.0 * ci[0]), (i as f64, 100.0 * ci[1])],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path.to_path_buf())
}

/// PNG plots: `offline_ncis.png` and `offline_gauc.png` (Table 1 as bars: one panel per
/// signal, one bar per method, NCIS with its CI) and `online_lift.png` (the paper's
/// Figure 2: WatchTime lift per day against the control for every learned method's arm).
/// `focus` (MMRF) is drawn with a black outline and a thick line with its 95 % band.
///
/// Labels need a TrueType font (`MMRF_FONT` or a system DejaVu/Liberation/Arial); without
/// one the plots are skipped with an error saying so.
pub fn plots(
    dir: &Path,
    offline: &[OfflineReport],
    online: Option<&AbReport>,
    focus: &str,
) -> Result<Vec<std::path::PathBuf>, String> {
    register_font()?;
    let mut written = table1_bars(dir, offline, focus)?;
    if let Some(online) = online {
        let names: Vec<String> = offline.iter().map(|r| r.method.clone()).collect();
        written.push(lift_per_day(&dir.join("online_lift.png"), online, &names, focus)?);
    }
    Ok(written)
}

/// Table 1 as bars, a file per metric: `offline_ncis.png` (with each CI) and
/// `offline_gauc.png`.
fn table1_bars(dir: &Path, offline: &[OfflineReport], focus: &str) -> Result<Vec<std::path::PathBuf>, String> {
    type Figure = fn(&crate::offline::SignalMetrics) -> Option<(f64, Option<[f64; 2]>)>;
    let tables: [(&str, &str, Figure, Axis); 2] = [
        (
            "offline_ncis.png",
            "NCIS",
            |m| Some((m.ncis, Some(m.ncis_ci))),
            Axis::FromZero,
        ),
        (
            "offline_gauc.png",
            "GAUC",
            |m| m.gauc.map(|g| (g, None)),
            Axis::Within(0.0, 1.0),
        ),
    ];
    let mut written = Vec::new();
    for (file, metric, figure, axis) in tables {
        let rows: Vec<BarRow> = offline
            .iter()
            .map(|r| BarRow {
                method: r.method.clone(),
                values: Signal::ALL
                    .iter()
                    .map(|sig| r.signals.get(sig.name()).and_then(figure))
                    .collect(),
            })
            .collect();
        written.push(signal_bars(&dir.join(file), metric, &rows, axis, focus)?);
    }
    Ok(written)
}

/// The paper's Figure 2 at `path`: the session WatchTime lift per day against the control
/// of every learned method's arm (`names`, those with an offline report; the reference
/// arms are in Table 2 and would only stretch the axis), the focus last, on top, with its
/// 95 % band.
fn lift_per_day(path: &Path, online: &AbReport, names: &[String], focus: &str) -> Result<std::path::PathBuf, String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let colour = |method: &str| Palette99::pick(colour_index(names, focus, method));
    {
        let root = BitMapBackend::new(path, (1000, 650)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut arms: Vec<_> = online
            .arms
            .iter()
            .filter(|a| a.name != online.control && names.contains(&a.name))
            .collect();
        arms.sort_by_key(|a| a.name == focus);
        let pct = |e: &crate::abtest::Estimate| [100.0 * e.ci[0], 100.0 * e.mean, 100.0 * e.ci[1]];
        let all: Vec<f64> = arms
            .iter()
            .flat_map(|a| {
                let band = a.name == focus;
                a.lift_per_day
                    .iter()
                    .flat_map(move |e| if band { pct(e).to_vec() } else { vec![pct(e)[1]] })
            })
            .filter(|x| x.is_finite())
            .collect();
        let lo = all.iter().copied().fold(0.0, f64::min) - 1.0;
        let hi = all.iter().copied().fold(0.0, f64::max) + 1.0;
        // Headroom for the key, so that it covers no line.
        let hi = hi + 0.45 * (hi - lo);
        let days = online.days.max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Session WatchTime lift per day against {} (%)", online.control),
                ("sans-serif", 24),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5f64..days + 0.5, lo..hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("day")
            .y_desc("lift (%)")
            .x_labels(online.days.max(1) as usize)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.5, 0.0), (days + 0.5, 0.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(|e| err(&e))?;
        for a in &arms {
            let c = colour(&a.name);
            let day = |d: usize| d as f64 + 1.0;
            let is_focus = a.name == focus;
            if is_focus {
                // Its 95 % band (paired bootstrap over users, per day).
                let mut band: Vec<(f64, f64)> = a
                    .lift_per_day
                    .iter()
                    .enumerate()
                    .map(|(d, e)| (day(d), pct(e)[2]))
                    .collect();
                band.extend(
                    a.lift_per_day
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(d, e)| (day(d), pct(e)[0])),
                );
                chart
                    .draw_series(std::iter::once(Polygon::new(band, c.mix(0.2).filled())))
                    .map_err(|e| err(&e))?;
            }
            let width = if is_focus { 4 } else { 2 };
            let pts: Vec<(f64, f64)> = a
                .lift_per_day
                .iter()
                .enumerate()
                .map(|(d, e)| (day(d), pct(e)[1]))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(width)))
                .map_err(|e| err(&e))?
                .label(if is_focus {
                    format!("{} (95 % band)", a.name)
                } else {
                    a.name.clone()
                })
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(width)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path.to_path_buf())
}

/// `RUN_DIR/learning_curve.png`: every loss in `train_log.jsonl` against the step, one panel
/// each.
pub fn learning_curve(run_dir: &Path) -> Result<std::path::PathBuf, String> {
    use plotters::prelude::*;
    let log = run_dir.join("train_log.jsonl");
    let text = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut series: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for line in text.lines() {
        let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
            continue;
        };
        for (k, x) in &v {
            if matches!(k.as_str(), "step" | "epoch" | "batch") {
                continue;
            }
            if let Some(x) = x.as_f64().filter(|x| x.is_finite()) {
                series.entry(k.clone()).or_default().push((step, x));
            }
        }
    }
    if series.is_empty() {
        return Err(format!("{}: no losses to plot", log.display()));
    }
    register_font()?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let path = run_dir.join("learning_curve.png");
    let n = series.len();
    {
        let root = BitMapBackend::new(&path, (520 * n.min(4) as u32, 380 * n.div_ceil(4) as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((n.div_ceil(4), n.min(4)));
        for (i, (panel, (name, pts))) in panels.iter().zip(&series).enumerate() {
            let (x0, x1) = (
                pts.first().map_or(0.0, |p| p.0),
                pts.last().map_or(1.0, |p| p.0).max(1.0),
            );
            let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let pad = ((hi - lo).abs() * 0.05).max(1e-6);
            let mut chart = ChartBuilder::on(panel)
                .caption(name, ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(55)
                .build_cartesian_2d(x0..x1, lo - pad..hi + pad)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .x_desc("step")
                .draw()
                .map_err(|e| err(&e))?;
            // Each point is one batch's loss, so the raw line is mostly batch-to-batch noise:
            // it is drawn faint, its moving mean over nine logged points bold.
            let colour = Palette99::pick(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), colour.mix(0.35).stroke_width(1)))
                .map_err(|e| err(&e))?;
            if pts.len() >= 9 {
                chart
                    .draw_series(LineSeries::new(moving_mean(pts, 4), colour.stroke_width(3)))
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(path)
}

/// The centred moving mean of `(x, y)` points over `2·half + 1` of them (fewer at the ends).
fn moving_mean(pts: &[(f64, f64)], half: usize) -> Vec<(f64, f64)> {
    (0..pts.len())
        .map(|i| {
            let w = &pts[i.saturating_sub(half)..(i + half + 1).min(pts.len())];
            (pts[i].0, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moving_mean_keeps_a_line_and_smooths_alternation() {
        let line: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 2.0 * i as f64 + 1.0)).collect();
        let m = moving_mean(&line, 4);
        assert_eq!(m.len(), line.len());
        // A straight line is its own centred mean wherever the window is whole.
        for i in 4..16 {
            assert!((m[i].1 - line[i].1).abs() < 1e-9, "{i}: {:?}", m[i]);
        }
        // At the ends the window is cut: the first point averages itself and four after.
        assert!((m[0].1 - 5.0).abs() < 1e-9);
        let zigzag: Vec<(f64, f64)> = (0..20)
            .map(|i| (i as f64, if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        let z = moving_mean(&zigzag, 4);
        assert!(z.iter().all(|p| p.1.abs() <= 0.2 + 1e-9), "{z:?}");
    }

    #[test]
    fn the_focus_alone_gets_the_first_colour_and_every_method_its_own() {
        let names: Vec<String> = ["bc", "tscac", "mmrf", "ltr"].iter().map(|s| s.to_string()).collect();
        let idx: Vec<usize> = names.iter().map(|n| colour_index(&names, "mmrf", n)).collect();
        assert_eq!(idx, vec![1, 2, 0, 3]);
        // Without the focus among them, nobody takes its colour.
        let idx: Vec<usize> = names.iter().map(|n| colour_index(&names, "pareto", n)).collect();
        assert_eq!(idx, vec![1, 2, 3, 4]);
    }
}
