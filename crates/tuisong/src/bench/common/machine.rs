//! What machine this is (CPU, memory, kernel, rustc, what else is running), this
//! process's open-file limit, and a child's RSS and CPU time read from /proc.

use anyhow::Context;
use serde::Serialize;

/// Raises this process's open-file limit (soft and, as root, hard) so tens of thousands
/// of sockets fit; children — the server — inherit it.
pub fn raise_nofile() {
    use rlimit::Resource;
    let want = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20)
        .min(1 << 20);
    if rlimit::setrlimit(Resource::NOFILE, want, want).is_err() {
        let _ = rlimit::increase_nofile_limit(want);
    }
}

pub fn nofile_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    pub date: String,
    /// No other rustc, cargo, chromium or test binaries running at the start.
    pub quiet: bool,
    pub busy: Vec<String>,
    pub loadavg: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let busy = busy_processes();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_gib: (memory_gib * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            rustc,
            date: utc_now(),
            quiet: busy.is_empty(),
            busy,
            loadavg: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "machine: {} × {}, {:.1} GiB, Linux {}, {}, load {}, {}",
            self.cpus,
            self.cpu_model,
            self.memory_gib,
            self.kernel,
            self.rustc,
            self.loadavg,
            self.date
        )
    }
}

/// Other processes that would compete for the two cores: compilers, browsers, tests.
fn busy_processes() -> Vec<String> {
    let me = std::process::id();
    let mut names = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return names;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        // Test binaries are `<name>-<hash>`, cut to 15 characters in comm.
        let test_binary = comm.rsplit_once('-').is_some_and(|(name, hash)| {
            !name.is_empty() && hash.len() >= 6 && hash.chars().all(|c| c.is_ascii_hexdigit())
        });
        let hit = ["rustc", "cargo", "cc1", "cc1plus", "ld", "chrome"].contains(&comm)
            || comm.starts_with("chromium")
            || test_binary;
        // Zombies cost nothing.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = state
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if hit && !zombie && !names.iter().any(|n| n == comm) {
            names.push(comm.to_owned());
        }
    }
    names
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock (civil-from-days, no date crate).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    format!("{} UTC", crate::civil::minute_text(secs))
}

/// Resident set size of a process, KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS in /proc/<pid>/status")
}

/// utime + stime of a process, seconds.
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
    let rest = s.rsplit(')').next().context("stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
    let sticks: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
    // USER_HZ is 100 on every Linux we run on.
    Ok((ticks + sticks) as f64 / 100.0)
}
