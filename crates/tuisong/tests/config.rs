//! The configuration as an operator meets it: `docs/tuisong.example.toml` names every key
//! the file layer takes and loads as exactly the compiled-in defaults (so it cannot go
//! stale), and `tuisong config check` prints the effective settings without a secret or
//! fails naming the key and the line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tuisong_server::{Overrides, Settings};

const BIN: &str = env!("CARGO_BIN_EXE_tuisong");

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tuisong.example.toml")
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), text).expect("write");
    f
}

/// Every key of the file layer, as its own refusal of an unknown key lists them
/// ("unknown field `x`, expected one of `listen`, `data_dir`, …").
fn file_keys() -> Vec<String> {
    let f = file("no_such_key_at_all = 1\n");
    let e = Settings::load(Some(f.path()), vec![], &Overrides::default()).expect_err("refused");
    let shown = e.to_string();
    let (_, expected) = shown
        .split_once("expected one of")
        .unwrap_or_else(|| panic!("the keys listed in {shown}"));
    let keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(keys.len() > 20, "{keys:?} from {shown}");
    keys
}

#[test]
fn the_example_config_names_every_key_with_a_comment_and_loads_as_the_defaults() {
    let path = example();
    let text = std::fs::read_to_string(&path).expect("docs/tuisong.example.toml");
    let lines: Vec<&str> = text.lines().collect();
    for key in file_keys() {
        let at = lines.iter().position(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.strip_prefix(key.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        let at = at.unwrap_or_else(|| panic!("`{key} = …` in {}", path.display()));
        assert!(
            at > 0 && lines[at - 1].starts_with("# "),
            "`{key}` has a comment line above it"
        );
        let comment: String = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#') && !l.contains(" = "))
            .copied()
            .collect();
        assert!(
            comment.contains("Default") && comment.contains("Env:"),
            "`{key}`'s comment gives its default and its env var: {comment}"
        );
    }
    let loaded = Settings::load(Some(&path), vec![], &Overrides::default()).expect("loads");
    assert_eq!(
        format!("{loaded:?}"),
        format!("{:?}", Settings::default()),
        "the example's values are the defaults"
    );
}

fn check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["config", "check"]).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("TUISONG_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("the tuisong binary runs")
}

#[test]
fn config_check_prints_the_effective_settings_with_secrets_redacted() {
    let f = file(
        "listen = \"0.0.0.0:9090\"\n\
         store = \"postgres://tuisong:pg-password-123@db.internal/tuisong\"\n\
         drain_timeout_secs = 7\n",
    );
    let token = "adm_a-very-secret-admin-token";
    let path = f.path().to_str().expect("utf-8 path");
    let out = check(
        &["--config", path],
        &[
            ("TUISONG_ADMIN_TOKEN", token),
            ("TUISONG_RETENTION_PUSH_DAYS", "3"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for shown in ["0.0.0.0:9090", "db.internal/tuisong", "push_days: 3", "7s"] {
        assert!(stdout.contains(shown), "{shown} in\n{stdout}");
    }
    for secret in ["pg-password-123", token] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} shown"
        );
    }
}

#[test]
fn config_check_fails_naming_the_key_and_its_line() {
    let f = file("demo_app = false\nworker_tick_ms = \"fast\"\n");
    let path = f.path().to_str().expect("utf-8 path");
    let out = check(&["--config", path], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(
        stderr.contains("line 2, column 18: worker_tick_ms: invalid type"),
        "{stderr}"
    );
    let out = check(&[], &[("TUISONG_DRAIN_TIMEOUT_SECS", "forever")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(stderr.contains("TUISONG_DRAIN_TIMEOUT_SECS"), "{stderr}");
    let out = check(&["--config", "/nonexistent/tuisong.toml"], &[]);
    assert!(!out.status.success(), "a missing file is an error");
}

#[test]
fn serve_help_lists_every_environment_variable_the_settings_read() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tuisong"))
        .args(["serve", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    let settings = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuisong-server/src/settings.rs"),
    )
    .expect("settings source");
    let mut vars: Vec<&str> = settings
        .split('"')
        .filter(|w| {
            w.starts_with("TUISONG_") && w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
        .collect();
    vars.sort_unstable();
    vars.dedup();
    assert!(vars.len() > 10, "{vars:?}");
    for v in vars {
        let shown = help.contains(v)
            || v.strip_prefix("TUISONG_RETENTION_").is_some_and(|rest| {
                help.contains("TUISONG_RETENTION_{MESSAGES,PUSH,STATS}_DAYS")
                    && rest.ends_with("_DAYS")
            });
        assert!(shown, "serve --help does not list {v}:\n{help}");
    }
}
