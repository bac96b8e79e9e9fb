//! SVG plots for `llmchain sim --plot DIR`: the distribution (CDF) of bounded
//! slowdown per policy, and cluster utilisation over time per policy.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use llmchain_core::metrics::TaskMetrics;
use llmchain_sim::RunResult;
use plotters::prelude::*;

const SIZE: (u32, u32) = (1000, 640);

/// Write every plot into `dir`; returns the files written.
/// `runs[p][s]` is policy `p` on sequence `s`.
pub fn write_all(dir: &Path, runs: &[Vec<RunResult>]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating plot directory {}", dir.display()))?;
    let cdf = dir.join("bsld_cdf.svg");
    bsld_cdf(&cdf, runs).with_context(|| format!("drawing {}", cdf.display()))?;
    let util = dir.join("utilisation.svg");
    utilisation(&util, runs).with_context(|| format!("drawing {}", util.display()))?;
    Ok(vec![cdf, util])
}

fn policy_colour(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

/// Empirical CDF of bounded slowdown, all sequences pooled, log-scaled x.
fn bsld_cdf(path: &Path, runs: &[Vec<RunResult>]) -> Result<()> {
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    let mut max_x: f64 = 10.0;
    for per_policy in runs {
        let mut v: Vec<f64> = per_policy
            .iter()
            .flat_map(|r| {
                r.tasks
                    .iter()
                    .filter_map(|t| t.outcome())
                    .map(|o| TaskMetrics::of(&o).bounded_slowdown)
            })
            .collect();
        v.sort_by(f64::total_cmp);
        if let Some(&m) = v.last() {
            max_x = max_x.max(m);
        }
        let name = per_policy
            .first()
            .map_or_else(String::new, |r| r.policy.clone());
        series.push((name, v));
    }
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Bounded slowdown: fraction of tasks at or below x",
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0f64..max_x * 1.2).log_scale(), 0.0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("bounded slowdown (log scale; τ = 10 s)")
        .y_desc("fraction of tasks")
        .draw()?;
    for (i, (name, v)) in series.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let n = v.len() as f64;
        // One point per distinct value (at most ~2,000 steps keeps files small).
        let step = (v.len() / 2000).max(1);
        let pts: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .filter(|(k, _)| k % step == 0 || *k == v.len() - 1)
            .map(|(k, x)| (x.max(1.0), (k + 1) as f64 / n))
            .collect();
        let colour = policy_colour(i);
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// CPU and memory utilisation over time on the first sequence, one line per policy.
fn utilisation(path: &Path, runs: &[Vec<RunResult>]) -> Result<()> {
    let mut t_max: f64 = 1.0;
    let mut has_mem = false;
    for per_policy in runs {
        if let Some(series) = per_policy
            .first()
            .and_then(|r| r.utilisation_series.as_ref())
        {
            if let Some(p) = series.last() {
                t_max = t_max.max(p.t);
            }
            has_mem |= series.iter().any(|p| p.util.mem > 0.0);
        }
    }
    let hours = t_max > 4.0 * 3600.0;
    let scale = if hours { 3600.0 } else { 1.0 };
    let root = SVGBackend::new(path, (SIZE.0, if has_mem { SIZE.1 * 2 } else { SIZE.1 }))
        .into_drawing_area();
    root.fill(&WHITE)?;
    let panels: Vec<_> = if has_mem {
        root.split_evenly((2, 1))
    } else {
        vec![root.clone()]
    };
    for (panel, (dim, label)) in panels.iter().zip([("cpu", "CPU"), ("mem", "memory")]) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{label} utilisation over time (first sequence; mean per 1/{BINS} of the run)"
                ),
                ("sans-serif", 22),
            )
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0f64..t_max / scale, 0.0f64..1.05)?;
        chart
            .configure_mesh()
            .x_desc(if hours {
                "time (hours)"
            } else {
                "time (seconds)"
            })
            .y_desc("fraction of capacity in use")
            .draw()?;
        for (i, per_policy) in runs.iter().enumerate() {
            let Some(first) = per_policy.first() else {
                continue;
            };
            let Some(series) = first.utilisation_series.as_ref() else {
                continue;
            };
            let pts = binned_mean(series, dim, t_max, BINS)
                .into_iter()
                .map(|(t, u)| (t / scale, u))
                .collect::<Vec<_>>();
            let colour = policy_colour(i);
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
                .label(first.policy.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Time bins in the utilisation plot.
const BINS: usize = 100;

/// Time-weighted mean utilisation per bin of a step series (each point's
/// value holds until the next point), as (bin centre, mean) pairs.
fn binned_mean(
    series: &[llmchain_sim::UtilPoint],
    dim: &str,
    t_max: f64,
    bins: usize,
) -> Vec<(f64, f64)> {
    let width = t_max / bins as f64;
    let mut area = vec![0.0; bins];
    for (k, p) in series.iter().enumerate() {
        let u = if dim == "cpu" { p.util.cpu } else { p.util.mem };
        let (mut a, b) = (p.t, series.get(k + 1).map_or(t_max, |q| q.t));
        while a < b {
            let bin = ((a / width) as usize).min(bins - 1);
            let bin_end = ((bin + 1) as f64 * width).min(b).max(a);
            area[bin] += u * (bin_end - a);
            if bin_end <= a {
                break;
            }
            a = bin_end;
        }
    }
    area.iter()
        .enumerate()
        .map(|(i, a)| ((i as f64 + 0.5) * width, a / width))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmchain_sim::{PerResource, UtilPoint};

    #[test]
    fn binned_mean_weights_by_time() {
        let p = |t: f64, cpu: f64| UtilPoint {
            t,
            util: PerResource {
                cpu,
                mem: 0.0,
                gpu: 0.0,
            },
        };
        // 1.0 for the first quarter, 0.0 after: bin 0 of 2 has mean 0.5.
        let b = binned_mean(&[p(0.0, 1.0), p(25.0, 0.0)], "cpu", 100.0, 2);
        assert_eq!(b, vec![(25.0, 0.5), (75.0, 0.0)]);
    }
}
