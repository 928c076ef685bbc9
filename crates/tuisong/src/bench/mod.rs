//! `tuisong bench <scenario>`: measurements of tuisong next to a baseline measured in the
//! same run on the same machine. Machines here are shared and noisy, so the claim is the
//! ratio, never the absolute number.
//!
//! | scenario | tuisong | baseline |
//! |---|---|---|
//! | `send` | consent-checked, durable sends/s through `/cgi-bin/message/subscribe/send` | a trivial axum handler on the same runtime settings |
//! | `deliver` | K devices on WebSockets: delivered messages/s, send→device latency | Mosquitto, K QoS 1 subscribers on per-user topics |
//! | `connections` | N idle WebSocket devices: server RSS per connection, CPU while idle | a private Mosquitto with N idle MQTT clients |
//! | `recall` | recall request → tombstone on the device | the same tombstone published through Mosquitto |
//!
//! The servers run as child processes (`serve` of this same binary, and a hidden
//! `bench baseline-server`) so that RSS and CPU are theirs alone and the load generator,
//! in this process, is the same for both sides. Results go to `docs/bench/<scenario>.json`;
//! `docs/BENCHMARKS.md` and the charts in `docs/bench/` are regenerated from every JSON
//! file there (`report`).

mod common;
mod connections;
mod deliver;
mod http;
mod mqtt;
mod recall;
mod report;
mod send;

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Send,
    Deliver,
    Connections,
    Recall,
    /// Every scenario, one after the other.
    All,
    /// Only rewrites BENCHMARKS.md and the charts from the JSON results already there.
    Report,
    /// The `send` baseline: a trivial axum handler, run as its own process.
    #[value(hide = true)]
    BaselineServer,
}

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    scenario: Scenario,
    /// send: concurrent HTTP connections [default: 64]. connections: the numbers of idle
    /// devices to measure at, e.g. 10000,50000,100000 [default: that].
    #[arg(long, value_delimiter = ',')]
    connections: Vec<usize>,
    /// deliver and recall: connected devices, one user each [default: 1000]
    #[arg(long)]
    devices: Option<usize>,
    /// deliver: the fixed send rate, messages/s
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds measured per target and phase (after a warm-up) [default: 10]
    #[arg(long)]
    seconds: Option<u64>,
    /// recall: messages delivered, then recalled [default: 1000]
    #[arg(long)]
    recalls: Option<usize>,
    /// A few seconds per scenario with small numbers: checks the bench still works (CI).
    /// Writes no results unless --docs is given.
    #[arg(long)]
    smoke: bool,
    /// Also run each scenario on this PostgreSQL store (postgres://…), beside the
    /// embedded one
    #[arg(long)]
    store: Option<String>,
    /// With --store: the NATS bus for that run (nats://…)
    #[arg(long)]
    bus: Option<String>,
    /// With --store and --bus: run that pass on this many nodes (1 or 2). With 2, `send`
    /// spreads its connections over both and `deliver` sends through node B to devices
    /// on node A.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The Mosquitto broker of the deliver and recall baselines
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// Where results go: <docs>/bench/<scenario>.json, <docs>/bench/*.svg and
    /// <docs>/BENCHMARKS.md [default: ./docs when it holds BENCHMARKS.md (the
    /// repository's root), else nowhere; nowhere with --smoke]
    #[arg(long)]
    docs: Option<PathBuf>,
}

/// Numbers a scenario runs with, after defaults and smoke mode.
#[derive(Clone, Debug)]
pub struct Plan {
    pub smoke: bool,
    pub seconds: u64,
    pub http_connections: usize,
    pub idle_connections: Vec<usize>,
    pub devices: usize,
    pub rate: u64,
    pub recalls: usize,
    pub mqtt: String,
}

impl BenchArgs {
    fn plan(&self) -> Plan {
        let smoke = self.smoke;
        let pick = |full: usize, small: usize| if smoke { small } else { full };
        let (http_connections, idle_connections) = match (self.scenario, &self.connections[..]) {
            (_, []) => (
                pick(64, 16),
                vec![pick(10_000, 500), pick(50_000, 1_000), pick(100_000, 2_000)],
            ),
            (Scenario::Connections, list) => (pick(64, 16), list.to_vec()),
            (_, list) => (list[0], vec![pick(10_000, 500)]),
        };
        let mut idle_connections = idle_connections;
        if smoke && self.connections.is_empty() {
            idle_connections.truncate(1);
        }
        idle_connections.sort_unstable();
        idle_connections.dedup();
        Plan {
            smoke,
            seconds: self.seconds.unwrap_or(if smoke { 2 } else { 10 }),
            http_connections,
            idle_connections,
            devices: self.devices.unwrap_or(pick(1000, 50)),
            rate: self.rate,
            recalls: self.recalls.unwrap_or(pick(1000, 50)),
            mqtt: self.mqtt.clone(),
        }
    }
}

/// Which store a run used: the embedded one, or PostgreSQL (+ NATS).
#[derive(Clone, Debug)]
pub struct StoreChoice {
    pub store: Option<String>,
    pub bus: Option<String>,
    /// Server processes sharing the store and bus (1 or 2).
    pub nodes: usize,
}

impl StoreChoice {
    pub fn label(&self) -> &'static str {
        match (&self.store, &self.bus, self.nodes) {
            (None, _, _) => "embedded",
            (Some(_), None, _) => "postgres",
            (Some(_), Some(_), 1) => "postgres+nats",
            (Some(_), Some(_), _) => "postgres+nats-2nodes",
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.scenario == Scenario::BaselineServer {
        return send::baseline_server().await;
    }
    let docs = match (&args.docs, args.smoke) {
        (Some(d), _) => Some(d.clone()),
        // ./docs only where it is tuisong's own (a run from the repository's root):
        // anywhere else the bench must not write into a stranger's docs folder.
        (None, false) if Path::new("docs/BENCHMARKS.md").is_file() => Some(PathBuf::from("docs")),
        (None, false) => {
            eprintln!(
                "no --docs given and ./docs/BENCHMARKS.md is not here: the results are printed, not written"
            );
            None
        }
        (None, true) => None,
    };
    if args.scenario == Scenario::Report {
        let docs = docs.context("--docs is needed with --smoke")?;
        return report::regenerate(&docs);
    }
    let plan = args.plan();
    let command = std::env::args()
        .map(|a| if a.contains("://") { redact_url(&a) } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    // Tens of thousands of sockets on each side: the server child inherits the limit.
    common::raise_nofile();
    let machine = common::Machine::probe();
    eprintln!("{}", machine.summary());
    if !machine.quiet {
        eprintln!(
            "note: the machine is not quiet ({}); ratios hold up better than absolute numbers",
            machine.busy.join(", ")
        );
    }
    if !(1..=2).contains(&args.nodes)
        || (args.nodes == 2 && (args.store.is_none() || args.bus.is_none()))
    {
        anyhow::bail!("--nodes is 1, or 2 together with --store and --bus");
    }
    let mut stores = vec![StoreChoice {
        store: None,
        bus: None,
        nodes: 1,
    }];
    if let Some(s) = &args.store {
        stores.push(StoreChoice {
            store: Some(s.clone()),
            bus: args.bus.clone(),
            nodes: args.nodes,
        });
    }
    let scenarios = match args.scenario {
        Scenario::All => vec![
            Scenario::Send,
            Scenario::Deliver,
            Scenario::Connections,
            Scenario::Recall,
        ],
        s => vec![s],
    };
    let mut failed = Vec::new();
    for store in &stores {
        for &s in &scenarios {
            let ctx = report::Context {
                command: command.clone(),
                machine: machine.clone(),
                store: store.label().to_owned(),
                smoke: plan.smoke,
            };
            let result = match s {
                Scenario::Send => send::run(&plan, store, ctx).await,
                Scenario::Deliver => deliver::run(&plan, store, ctx).await,
                Scenario::Connections => connections::run(&plan, store, ctx).await,
                Scenario::Recall => recall::run(&plan, store, ctx).await,
                Scenario::All | Scenario::Report | Scenario::BaselineServer => unreachable!(),
            };
            match result {
                Ok(r) => {
                    println!("{}", r.markdown_table());
                    if let Some(docs) = &docs {
                        r.write_json(docs)?;
                    }
                }
                Err(e) => {
                    eprintln!("bench {s:?} on {}: failed: {e:#}", store.label());
                    failed.push(format!("{s:?} ({})", store.label()));
                }
            }
        }
    }
    if let Some(docs) = &docs {
        report::regenerate(docs)?;
        eprintln!(
            "wrote {}/BENCHMARKS.md and {}/bench/",
            docs.display(),
            docs.display()
        );
    }
    if !failed.is_empty() {
        anyhow::bail!("scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `postgres://user:password@host/db` → `postgres://user:…@host/db` for the report.
fn redact_url(a: &str) -> String {
    match (a.find("://"), a.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &a[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &a[..s + 3], &a[at..]),
                None => a.to_owned(),
            }
        }
        _ => a.to_owned(),
    }
}
