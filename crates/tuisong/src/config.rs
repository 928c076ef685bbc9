//! `tuisong config check [--config FILE]`: loads the settings as `serve` would (compiled-in
//! defaults → the file → `TUISONG_*` variables) and prints the effective values, secrets
//! redacted (the admin token and the passwords in the store and bus URLs, by `Settings`'
//! own `Debug`), or the first error, which names the key (and, in the file, its line).
//! Nothing is opened or bound: the check can run beside a live server.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use tuisong_server::{Overrides, Settings};

#[derive(Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    cmd: ConfigCmd,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Load the settings from every layer and print them (secrets redacted), or the error.
    Check {
        /// TOML config file (docs/tuisong.example.toml lists every key)
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    match args.cmd {
        ConfigCmd::Check { config } => {
            let settings =
                Settings::load(config.as_deref(), std::env::vars(), &Overrides::default())?;
            let from = match &config {
                Some(p) => format!("{} and the environment", p.display()),
                None => "defaults and the environment (no file)".to_owned(),
            };
            // One write, its failure ignored: `config check | head` is not an error.
            let text = format!("config OK: {from}\n{settings:#?}\n");
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            Ok(())
        }
    }
}
