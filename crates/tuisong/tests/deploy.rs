//! The files in `deploy/` agree with the binary: the systemd unit parses (when
//! `systemd-analyze` is on the machine), both run `serve` the way docs/DEPLOY.md says,
//! and both give a stop more time than the drain takes.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tuisong");

fn deploy(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

/// The rest of the first line starting with `prefix` (`Key=` in systemd, `KEY ` here).
fn value<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

fn default_drain_secs() -> u64 {
    tuisong_server::Settings::default().drain_timeout.as_secs()
}

#[test]
fn the_systemd_unit_parses() {
    let found = Command::new("systemd-analyze").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: systemd-analyze is not available on this machine");
        return;
    }
    let (_, unit) = deploy("tuisong.service");
    // `verify` checks that the command exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tuisong.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/tuisong", BIN)).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // An unknown directive or a bad value is only a warning: there must be none.
    assert!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn the_unit_runs_serve_as_documented_and_outlasts_the_drain() {
    let (_, unit) = deploy("tuisong.service");
    assert_eq!(
        value(&unit, "ExecStart="),
        Some(
            "/usr/local/bin/tuisong serve --config /etc/tuisong/tuisong.toml \
             --data-dir /var/lib/tuisong"
        )
    );
    for line in [
        "User=tuisong",
        "StateDirectory=tuisong",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/tuisong",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in the unit");
    }
    let stop: u64 = value(&unit, "TimeoutStopSec=")
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > default_drain_secs(),
        "TimeoutStopSec {stop} > the drain"
    );
}

#[test]
fn the_containerfile_runs_serve_unprivileged_on_8080_with_a_volume_and_a_healthcheck() {
    let (_, file) = deploy("Containerfile");
    assert!(
        file.lines().filter(|l| l.starts_with("FROM ")).count() >= 2,
        "multi-stage"
    );
    let user = value(&file, "USER ").expect("a USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert_eq!(value(&file, "EXPOSE "), Some("8080"));
    assert_eq!(value(&file, "VOLUME "), Some("[\"/var/lib/tuisong\"]"));
    assert!(file.contains("TUISONG_LISTEN=0.0.0.0:8080"));
    assert!(file.contains("TUISONG_DATA_DIR=/var/lib/tuisong"));
    let health = file
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .nth(1)
        .expect("HEALTHCHECK … CMD");
    assert!(
        health.contains("/healthz") && health.contains("8080"),
        "{health}"
    );
    let stop = file.split("--stop-timeout ").nth(1).and_then(|r| {
        r.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<u64>().ok())
    });
    assert!(
        stop.is_some_and(|s| s > default_drain_secs()),
        "the documented --stop-timeout outlasts the drain: {stop:?}"
    );
}

/// The healthcheck's command, run against a live server: bash's /dev/tcp is enough.
#[test]
fn the_containerfile_healthcheck_command_passes_against_a_server() {
    let (_, file) = deploy("Containerfile");
    let line = file
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .nth(1)
        .expect("HEALTHCHECK … CMD");
    let json = line.trim().strip_prefix("CMD ").expect("CMD [..]");
    let argv: Vec<String> = serde_json::from_str(json).expect("CMD in exec form");
    if Command::new(&argv[0])
        .arg("-c")
        .arg("true")
        .status()
        .is_err()
    {
        eprintln!("skipped: {} is not available on this machine", argv[0]);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut server = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("TUISONG_LOG", "warn")
        .env("TUISONG_DEMO_APP", "false")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let script = argv[2].replace("8080", &port.to_string());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let healthy = loop {
        let ok = Command::new(&argv[0])
            .args([&argv[1], &script])
            .status()
            .is_ok_and(|s| s.success());
        if ok || std::time::Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(healthy, "the healthcheck passes against a running server");
}
