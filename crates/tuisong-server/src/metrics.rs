//! The node's metrics, in the Prometheus/OpenMetrics text format (`GET /metrics`, the
//! names are in docs/METRICS.md). `prometheus-client` keeps each series as an atomic;
//! every label value is a `&'static str`, an errcode or an enum, so a send allocates
//! nothing for its labels and no label can hold an openid, an appid or a secret.
//!
//! Two scopes:
//! - [`Metrics`], one per node (`AppState::metrics`): what the HTTP handlers count
//!   (sends, their latency, recalls) and what is read when scraped (devices, sockets,
//!   worker restarts);
//! - [`process`]: counters bumped where no state reaches (the device gateway's frames
//!   and acks, message-push attempts, store failures). One process is one node in
//!   production; tests that run several nodes in one process see them summed.
//!
//! This module depends on nothing else of the crate.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::sync::LazyLock;
use std::time::Duration;

/// The content type of the OpenMetrics text format (Prometheus reads it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The API a send came through.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Dialect {
    /// `POST /cgi-bin/message/subscribe/send`.
    Wechat,
    /// `POST /v1/messages`.
    V1,
}

impl EncodeLabelValue for Dialect {
    fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        e.write_str(match self {
            Dialect::Wechat => "wechat",
            Dialect::V1 => "v1",
        })
    }
}

/// How a send ended: `ok`, or why it was refused — the WeChat errcode in the WeChat
/// dialect, the stable error code in /v1. Both come from fixed tables.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Errcode(i64),
    Code(&'static str),
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Outcome::Ok => e.write_str("ok"),
            Outcome::Errcode(n) => write!(e, "{n}"),
            Outcome::Code(c) => e.write_str(c),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    dialect: Dialect,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DialectLabel {
    dialect: Dialect,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    node: String,
}

/// Counters of the whole process (see the module's doc).
pub struct ProcessCounters {
    /// Frames written to devices (cards, tombstones, answers, pings).
    pub frames_out: Counter,
    /// Acks of devices that the store took.
    pub acks: Counter,
    push_attempts: Family<OutcomeLabel, Counter>,
    store_errors: Family<KindLabel, Counter>,
}

static PROCESS: LazyLock<ProcessCounters> = LazyLock::new(|| ProcessCounters {
    frames_out: Counter::default(),
    acks: Counter::default(),
    push_attempts: Family::default(),
    store_errors: Family::default(),
});

/// The process-wide counters.
pub fn process() -> &'static ProcessCounters {
    &PROCESS
}

impl ProcessCounters {
    /// One message-push attempt: delivered, to be retried, or given up.
    pub fn push_attempt(&self, ok: bool, retry: bool) {
        let outcome = match (ok, retry) {
            (true, _) => "delivered",
            (false, true) => "retry",
            (false, false) => "gave_up",
        };
        self.push_attempts
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// A store failure answered to a caller: `unavailable` (an outage, retry) or `failure`.
    pub fn store_error(&self, unavailable: bool) {
        let kind = if unavailable {
            "unavailable"
        } else {
            "failure"
        };
        self.store_errors.get_or_create(&KindLabel { kind }).inc();
    }
}

/// The store's commits as last scraped: `tuisong_store_commit_seconds` and
/// `tuisong_store_batch_size` (jobs per commit), encoded from the store's own atomics
/// (`tuisong_core::store::CommitStats`) rather than kept twice.
#[derive(Debug, Default)]
struct StoreCommits(parking_lot::Mutex<Option<tuisong_core::store::CommitSnapshot>>);

impl prometheus_client::collector::Collector for StoreCommits {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::NoLabelSet;
        use prometheus_client::metrics::MetricType;
        let Some(s) = self.0.lock().clone() else {
            return Ok(());
        };
        let mut m = encoder.encode_descriptor(
            "store_commit_seconds",
            "Time of the store's COMMIT (SQLite: the fsync of a group commit)",
            None,
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(s.commit_seconds_sum, s.commits, &s.commit_seconds, None)?;
        let mut m = encoder.encode_descriptor(
            "store_batch_size",
            "Writes per store commit (SQLite group commit; 1 on PostgreSQL)",
            None,
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(s.jobs as f64, s.commits, &s.batch_sizes, None)
    }
}

/// Values read from the node's state when scraped.
pub struct Scraped<'a> {
    /// Device sessions that said hello.
    pub devices: usize,
    /// Device sockets open (including those still waiting for their hello).
    pub sockets: usize,
    /// Restarts of each worker since the node started.
    pub worker_restarts: &'a [(&'static str, u64)],
    /// The store's commits, when it records them.
    pub commits: Option<tuisong_core::store::CommitSnapshot>,
}

/// The metrics of one node.
pub struct Metrics {
    registry: Registry,
    sends: Family<SendLabels, Counter>,
    send_seconds: Family<DialectLabel, Histogram>,
    /// Messages recalled through `/v1/messages/{msgid}/recall`.
    pub recalls: Counter,
    devices: Gauge,
    sockets: Gauge,
    worker_restarts: Family<WorkerLabel, Counter>,
    /// Serialises scrapes: restarts are carried into their counters by difference.
    scrape: parking_lot::Mutex<()>,
    commits: std::sync::Arc<StoreCommits>,
}

impl Metrics {
    /// The node's registry; `node` names the node in `tuisong_build_info`.
    pub fn new(node: &str) -> Metrics {
        let mut registry = Registry::with_prefix("tuisong");
        let sends = Family::<SendLabels, Counter>::default();
        let send_seconds = Family::<DialectLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 14))) as fn() -> Histogram,
        );
        // Pre-create the series every send touches, so that the first send of each
        // dialect does not take the family's write lock and `ok` shows from the start.
        for dialect in [Dialect::Wechat, Dialect::V1] {
            let _ = sends.get_or_create(&SendLabels {
                dialect,
                outcome: Outcome::Ok,
            });
            let _ = send_seconds.get_or_create(&DialectLabel { dialect });
        }
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                node: node.to_owned(),
            })
            .set(1);
        let m = Metrics {
            registry: Registry::default(),
            sends,
            send_seconds,
            recalls: Counter::default(),
            devices: Gauge::default(),
            sockets: Gauge::default(),
            worker_restarts: Family::default(),
            scrape: parking_lot::Mutex::new(()),
            commits: std::sync::Arc::default(),
        };
        let p = process();
        let r = &mut registry;
        r.register(
            "sends",
            "Send calls by dialect and outcome",
            m.sends.clone(),
        );
        r.register(
            "send_duration_seconds",
            "Time to answer a send call",
            m.send_seconds.clone(),
        );
        r.register("recalls", "Messages recalled", m.recalls.clone());
        r.register(
            "connected_devices",
            "Device sessions on this node",
            m.devices.clone(),
        );
        r.register(
            "device_sockets",
            "Device sockets open on this node",
            m.sockets.clone(),
        );
        r.register(
            "frames_out",
            "Frames written to devices",
            p.frames_out.clone(),
        );
        r.register("acks", "Device acks taken by the store", p.acks.clone());
        r.register(
            "push_attempts",
            "Message-push attempts by outcome",
            p.push_attempts.clone(),
        );
        r.register(
            "store_errors",
            "Store failures answered to callers, by kind",
            p.store_errors.clone(),
        );
        r.register(
            "worker_restarts",
            "Restarts of each background worker",
            m.worker_restarts.clone(),
        );
        r.register("build_info", "The build and node (always 1)", build_info);
        r.register_collector(Box::new(m.commits.clone()));
        Metrics { registry, ..m }
    }

    /// Counts one send call that took `took`.
    pub fn send(&self, dialect: Dialect, outcome: Outcome, took: Duration) {
        self.sends
            .get_or_create(&SendLabels { dialect, outcome })
            .inc();
        self.send_seconds
            .get_or_create(&DialectLabel { dialect })
            .observe(took.as_secs_f64());
    }

    /// The exposition, with the scraped values brought up to date.
    pub fn render(&self, now: &Scraped<'_>) -> String {
        let _one = self.scrape.lock();
        self.devices.set(now.devices as i64);
        self.sockets.set(now.sockets as i64);
        for &(worker, n) in now.worker_restarts {
            let c = self.worker_restarts.get_or_create(&WorkerLabel { worker });
            let seen = c.get();
            if n > seen {
                c.inc_by(n - seen);
            }
        }
        *self.commits.0.lock() = now.commits.clone();
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_sends_by_dialect_and_outcome() {
        let m = Metrics::new("node-test");
        m.send(Dialect::Wechat, Outcome::Ok, Duration::from_millis(3));
        m.send(
            Dialect::Wechat,
            Outcome::Errcode(43101),
            Duration::from_millis(1),
        );
        m.send(
            Dialect::V1,
            Outcome::Code("no_consent"),
            Duration::from_millis(1),
        );
        let text = m.render(&Scraped {
            devices: 2,
            sockets: 3,
            worker_restarts: &[("push", 4)],
            commits: Some({
                let c = tuisong_core::store::CommitStats::new();
                c.record(3, Duration::from_millis(2));
                c.snapshot()
            }),
        });
        for line in [
            r#"tuisong_sends_total{dialect="wechat",outcome="ok"} 1"#,
            r#"tuisong_sends_total{dialect="wechat",outcome="43101"} 1"#,
            r#"tuisong_sends_total{dialect="v1",outcome="no_consent"} 1"#,
            r#"tuisong_sends_total{dialect="v1",outcome="ok"} 0"#,
            r#"tuisong_send_duration_seconds_count{dialect="wechat"} 2"#,
            "tuisong_connected_devices 2",
            "tuisong_device_sockets 3",
            r#"tuisong_worker_restarts_total{worker="push"} 4"#,
            r#"tuisong_build_info{version=""#,
            "tuisong_store_commit_seconds_count 1",
            r#"tuisong_store_batch_size_bucket{le="4.0"} 1"#,
            "tuisong_store_batch_size_sum 3.0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // A later scrape carries restarts by difference, never backwards.
        let text = m.render(&Scraped {
            devices: 0,
            sockets: 0,
            worker_restarts: &[("push", 5)],
            commits: None,
        });
        assert!(text.contains(r#"tuisong_worker_restarts_total{worker="push"} 5"#));
    }
}
