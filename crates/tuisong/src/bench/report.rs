//! Results: one JSON file per scenario and store (`docs/bench/<scenario>[-<store>].json`),
//! and from all of them the generated part of `docs/BENCHMARKS.md` (between markers, so
//! the hand-written analysis around it survives) and two hand-written SVG charts: every
//! figure against its baseline, and the latencies.

use super::common::{Machine, write_file};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// What every result records about how it was made.
#[derive(Clone, Debug)]
pub struct Context {
    pub command: String,
    pub machine: Machine,
    pub store: String,
    pub smoke: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// tuisong ÷ baseline at least this.
    RatioAtLeast(f64),
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met(&self, row: &Row) -> Option<bool> {
        match *self {
            Target::RatioAtLeast(r) => row.ratio().map(|x| x >= r),
            Target::AtLeast(v) => Some(row.value >= v),
            Target::AtMost(v) => Some(row.value <= v),
        }
    }

    fn text(&self, unit: &str) -> String {
        match *self {
            Target::RatioAtLeast(r) => format!("≥ {r}× baseline"),
            Target::AtLeast(v) => format!("≥ {} {unit}", num(v)),
            Target::AtMost(v) => format!("≤ {} {unit}", num(v)),
        }
    }
}

/// One figure, its baseline measured in the same run, and its targets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub metric: String,
    pub unit: String,
    /// NaN (written as null) when nothing was measured.
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
    pub baseline: Option<f64>,
    pub baseline_name: String,
    pub better: Better,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub note: String,
}

impl Row {
    pub fn new(metric: impl Into<String>, unit: &str, value: f64, better: Better) -> Row {
        Row {
            metric: metric.into(),
            unit: unit.to_owned(),
            value,
            baseline: None,
            baseline_name: String::new(),
            better,
            targets: Vec::new(),
            note: String::new(),
        }
    }

    pub fn baseline(mut self, name: &str, value: Option<f64>) -> Row {
        self.baseline_name = name.to_owned();
        self.baseline = value.filter(|v| v.is_finite());
        self
    }

    pub fn target(mut self, t: Target) -> Row {
        self.targets.push(t);
        self
    }

    pub fn note(mut self, n: impl Into<String>) -> Row {
        self.note = n.into();
        self
    }

    /// tuisong ÷ baseline.
    pub fn ratio(&self) -> Option<f64> {
        let b = self.baseline?;
        (b > 0.0 && self.value.is_finite()).then(|| self.value / b)
    }

    /// How many times better than the baseline (>1: tuisong is better), whichever way
    /// "better" points.
    fn advantage(&self) -> Option<f64> {
        let r = self.ratio()?;
        Some(match self.better {
            Better::Higher => r,
            Better::Lower => 1.0 / r,
        })
        .filter(|a| a.is_finite() && *a > 0.0)
    }

    pub fn met(&self) -> Option<bool> {
        if self.targets.is_empty() {
            return None;
        }
        Some(self.targets.iter().all(|t| t.met(self) == Some(true)))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub store: String,
    pub command: String,
    pub smoke: bool,
    pub machine: Machine,
    /// The numbers the scenario ran with (connections, devices, rate, seconds …).
    pub params: serde_json::Value,
    pub rows: Vec<Row>,
    /// What a reader needs to read the rows right (what the baseline does differently).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl ScenarioResult {
    pub fn new(scenario: &str, ctx: Context, params: serde_json::Value) -> ScenarioResult {
        ScenarioResult {
            scenario: scenario.to_owned(),
            store: ctx.store,
            command: ctx.command,
            smoke: ctx.smoke,
            machine: ctx.machine,
            params,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn file_name(&self) -> String {
        if self.store == "embedded" {
            format!("{}.json", self.scenario)
        } else {
            format!("{}-{}.json", self.scenario, self.store)
        }
    }

    pub fn write_json(&self, docs: &Path) -> anyhow::Result<()> {
        let path = docs.join("bench").join(self.file_name());
        write_file(&path, &(serde_json::to_string_pretty(self)? + "\n"))
    }

    pub fn markdown_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\n{} on the {} store", self.scenario, self.store);
        table(&mut s, std::slice::from_ref(self), false);
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A number with a sensible number of digits.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 10_000.0 {
        let s = format!("{:.0}", v);
        // Thin groups of three, as the docs write large numbers.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn table(s: &mut String, results: &[ScenarioResult], with_scenario: bool) {
    if with_scenario {
        s.push_str("| scenario | store | figure | tuisong | baseline | ratio (tuisong ÷ baseline) | target | met |\n");
        s.push_str("|---|---|---|--:|---|--:|---|---|\n");
    } else {
        s.push_str("| figure | tuisong | baseline | ratio (tuisong ÷ baseline) | target | met |\n");
        s.push_str("|---|--:|---|--:|---|---|\n");
    }
    for r in results {
        for row in &r.rows {
            let baseline = match row.baseline {
                Some(b) => format!("{} {} ({})", num(b), row.unit, row.baseline_name),
                None if row.baseline_name.is_empty() => "—".to_owned(),
                None => format!("— ({})", row.baseline_name),
            };
            let ratio = row.ratio().map_or("—".to_owned(), |x| format!("{x:.2}×"));
            let target = if row.targets.is_empty() {
                "—".to_owned()
            } else {
                row.targets
                    .iter()
                    .map(|t| t.text(&row.unit))
                    .collect::<Vec<_>>()
                    .join(" and ")
            };
            let met = match row.met() {
                Some(true) => "✅ met",
                Some(false) => "❌ missed",
                None => "",
            };
            let mut fig = row.metric.clone();
            if !row.note.is_empty() {
                let _ = write!(fig, " <br><sub>{}</sub>", row.note);
            }
            if with_scenario {
                let _ = write!(s, "| {} | {} ", r.scenario, r.store);
            }
            let _ = writeln!(
                s,
                "| {fig} | **{} {}** | {baseline} | {ratio} | {target} | {met} |",
                num(row.value),
                row.unit
            );
        }
    }
}

const BEGIN: &str =
    "<!-- bench:begin — generated by `tuisong bench`; edit outside these markers -->";
const END: &str = "<!-- bench:end -->";
const ORDER: [&str; 4] = ["send", "deliver", "connections", "recall"];

/// Rewrites the generated part of `<docs>/BENCHMARKS.md` and the charts from every
/// `<docs>/bench/*.json`.
pub fn regenerate(docs: &Path) -> anyhow::Result<()> {
    let dir = docs.join("bench");
    let mut results = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let text = std::fs::read_to_string(&p)?;
                let r: ScenarioResult = serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", p.display()))?;
                results.push(r);
            }
        }
    }
    results.sort_by_key(|r| {
        (
            ORDER.iter().position(|s| *s == r.scenario).unwrap_or(99),
            r.store != "embedded",
            r.store.clone(),
        )
    });
    let mut md = String::new();
    md.push_str(BEGIN);
    md.push_str("\n\n## Results\n\n");
    if results.is_empty() {
        md.push_str("No results yet: run `tuisong bench all`.\n");
    }
    // One machine line per distinct machine/date, in scenario order.
    let mut seen = Vec::new();
    for r in &results {
        let m = &r.machine;
        let key = format!("{}|{}", m.date, r.command);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let which: Vec<String> = results
            .iter()
            .filter(|x| x.machine.date == m.date && x.command == r.command)
            .map(|x| format!("{} ({})", x.scenario, x.store))
            .collect();
        let _ = writeln!(
            md,
            "- **{}**: `{}` — {} — {} × {}, {:.1} GiB, Linux {}, {}; load average at start {}; {}{}",
            which.join(", "),
            r.command,
            m.date,
            m.cpus,
            m.cpu_model,
            m.memory_gib,
            m.kernel,
            m.rustc,
            m.loadavg,
            if m.quiet {
                "quiet (no compiler, browser or test running)".to_owned()
            } else {
                format!("**not quiet**: {} running", m.busy.join(", "))
            },
            if r.smoke {
                " — **smoke run, not a measurement**"
            } else {
                ""
            },
        );
    }
    md.push('\n');
    table(&mut md, &results, true);
    md.push('\n');
    for r in &results {
        if r.notes.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "**{} ({})**: {}\n",
            r.scenario,
            r.store,
            r.notes.join(" ")
        );
    }
    if !results.is_empty() {
        md.push_str("![every figure against its baseline](bench/ratios.svg)\n\n");
        md.push_str("![latencies, tuisong and baseline](bench/latency.svg)\n\n");
    }
    md.push_str(END);
    md.push('\n');

    let path = docs.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => format!(
            "{}{}{}",
            &old[..b],
            md,
            &old[e + END.len()..].trim_start_matches('\n')
        ),
        _ if old.is_empty() => format!(
            "# Benchmarks\n\nMeasured with `tuisong bench`: each figure next to a baseline measured in the same run on the same machine; the ratio is the claim.\n\n{md}"
        ),
        _ => format!("{}\n\n{md}", old.trim_end()),
    };
    write_file(&path, &new)?;
    write_file(&dir.join("ratios.svg"), &ratio_chart(&results))?;
    write_file(&dir.join("latency.svg"), &latency_chart(&results))?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const FONT: &str = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

/// Horizontal bars, log scale: how many times better than its baseline each figure is
/// (>1 = tuisong better), with the ratio targets marked.
fn ratio_chart(results: &[ScenarioResult]) -> String {
    let rows: Vec<(&ScenarioResult, &Row, f64)> = results
        .iter()
        .flat_map(|r| r.rows.iter().map(move |row| (r, row)))
        .filter_map(|(r, row)| Some((r, row, row.advantage()?)))
        .collect();
    let (left, width, bar_h, top) = (480.0, 420.0, 22.0, 58.0);
    let height = top + rows.len() as f64 * (bar_h + 8.0) + 50.0;
    let (lo, hi) = (0.001f64, 100.0f64);
    let x =
        |v: f64| left + (v.clamp(lo, hi).log10() - lo.log10()) / (hi.log10() - lo.log10()) * width;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" {FONT} font-size="12">"#,
        w = left + width + 40.0
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">tuisong against its baseline (same run, same machine)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="40" fill="#555">times better than the baseline, log scale: right of 1× tuisong is better; ▼ marks a ratio target; green met, red missed, grey no target</text>"##
    );
    for (i, tick) in [0.001, 0.01, 0.1, 1.0, 10.0, 100.0].iter().enumerate() {
        let tx = x(*tick);
        let _ = writeln!(
            s,
            r##"<line x1="{tx}" y1="{top}" x2="{tx}" y2="{y2}" stroke="{c}" stroke-width="{sw}"/><text x="{tx}" y="{ty}" text-anchor="middle" fill="#555">{tick}×</text>"##,
            y2 = height - 40.0,
            ty = height - 25.0,
            c = if *tick == 1.0 { "#333" } else { "#ddd" },
            sw = if *tick == 1.0 { 1.5 } else { 1.0 },
        );
        let _ = i;
    }
    for (i, (r, row, adv)) in rows.iter().enumerate() {
        let y = top + 6.0 + i as f64 * (bar_h + 8.0);
        let color = match row.met() {
            Some(true) => "#2e9d5b",
            Some(false) => "#d9534f",
            None => "#9aa3ad",
        };
        let (x0, x1) = (x(1.0), x(*adv));
        let _ = writeln!(
            s,
            r#"<text x="{lx}" y="{ty}" text-anchor="end">{label}</text><rect x="{rx}" y="{y}" width="{rw}" height="{bar_h}" fill="{color}"/><text x="{vx}" y="{ty}" text-anchor="start" font-weight="bold">{adv_text}×</text>"#,
            adv_text = if *adv < 0.1 {
                format!("{adv:.3}")
            } else {
                format!("{adv:.2}")
            },
            lx = left - 8.0,
            ty = y + bar_h * 0.7,
            label = esc(&if r.store == "embedded" {
                format!("{} · {}", r.scenario, row.metric)
            } else {
                format!("{} · {} ({})", r.scenario, row.metric, r.store)
            }),
            rx = x0.min(x1),
            rw = (x1 - x0).abs().max(1.0),
            // Right of the bar's end, or right of the 1× line for a bar that goes left.
            vx = x0.max(x1) + 4.0,
        );
        for t in &row.targets {
            if let Target::RatioAtLeast(v) = t {
                let tv = match row.better {
                    Better::Higher => *v,
                    Better::Lower => 1.0 / v,
                };
                let tx = x(tv);
                let _ = writeln!(
                    s,
                    r##"<text x="{tx}" y="{y}" text-anchor="middle" fill="#000" font-size="11">▼</text>"##,
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Grouped bars, log scale ms: every latency figure, tuisong beside its baseline, with
/// its target drawn as a red line.
fn latency_chart(results: &[ScenarioResult]) -> String {
    let rows: Vec<(&ScenarioResult, &Row)> = results
        .iter()
        .flat_map(|r| r.rows.iter().map(move |row| (r, row)))
        .filter(|(_, row)| row.unit == "ms" && row.value.is_finite())
        .collect();
    let (left, top, group_w, plot_h) = (60.0, 60.0, 74.0, 260.0);
    let width = left + rows.len().max(1) as f64 * group_w + 190.0;
    let height = top + plot_h + 150.0;
    let (lo, hi) = (0.01f64, 1000.0f64);
    let y = |v: f64| {
        top + plot_h - (v.clamp(lo, hi).log10() - lo.log10()) / (hi.log10() - lo.log10()) * plot_h
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT} font-size="11">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">Latency (ms, log scale): tuisong beside its baseline</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="40" fill="#555"><tspan fill="#3b6fb6">■ tuisong</tspan>  <tspan fill="#e39b3a">■ baseline</tspan>  <tspan fill="#d9534f">— target</tspan></text>"##
    );
    for tick in [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0] {
        let ty = y(tick);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{ty}" x2="{x2}" y2="{ty}" stroke="#e5e5e5"/><text x="{lx}" y="{tty}" text-anchor="end" fill="#555">{tick}</text>"##,
            x2 = width - 180.0,
            lx = left - 6.0,
            tty = ty + 4.0
        );
    }
    for (i, (r, row)) in rows.iter().enumerate() {
        let gx = left + i as f64 * group_w + 10.0;
        let bw = (group_w - 24.0) / 2.0;
        let base = y(lo);
        let vy = y(row.value);
        let _ = writeln!(
            s,
            r##"<rect x="{gx}" y="{vy}" width="{bw}" height="{h}" fill="#3b6fb6"><title>{t}</title></rect>"##,
            h = (base - vy).max(0.5),
            t = esc(&format!("tuisong {:.3} ms", row.value))
        );
        if let Some(b) = row.baseline {
            let by = y(b);
            let _ = writeln!(
                s,
                r##"<rect x="{bx}" y="{by}" width="{bw}" height="{h}" fill="#e39b3a"><title>{t}</title></rect>"##,
                bx = gx + bw + 2.0,
                h = (base - by).max(0.5),
                t = esc(&format!("{} {:.3} ms", row.baseline_name, b))
            );
        }
        for t in &row.targets {
            if let Target::AtMost(v) = t {
                let ty = y(*v);
                let _ = writeln!(
                    s,
                    r##"<line x1="{x1}" y1="{ty}" x2="{x2}" y2="{ty}" stroke="#d9534f" stroke-width="2"/>"##,
                    x1 = gx - 3.0,
                    x2 = gx + 2.0 * bw + 5.0
                );
            }
        }
        let lx = gx + bw;
        let ly = top + plot_h + 10.0;
        let label = if r.store == "embedded" {
            format!("{} {}", r.scenario, row.metric)
        } else {
            format!("{} {} ({})", r.scenario, row.metric, r.store)
        };
        let _ = writeln!(
            s,
            r#"<text x="{lx}" y="{ly}" transform="rotate(40 {lx} {ly})" text-anchor="start">{}</text>"#,
            esc(&label)
        );
    }
    s.push_str("</svg>\n");
    s
}
