//! Browser tests: the console (`/console`) and the phone simulator (`/simulator`) driven
//! in real headless Chromium through chromedriver's W3C WebDriver API, against a server
//! started in-process on 127.0.0.1:0 with a temp data dir.
//!
//! Without /usr/bin/chromium or /usr/bin/chromedriver each browser test prints why it is
//! skipped and passes; with `TUISONG_TEST_BROWSER=1` (CI) a missing browser fails it.
//! Screenshots go to the target dir, or to docs/screenshots/ with
//! `TUISONG_SCREENSHOTS=docs` (how the README's pictures are made).

mod console;
mod driver;
mod pages;
mod server;
mod simulator;
mod story;

use std::path::{Path, PathBuf};

/// Whether the browser tests can run here; panics when CI demands them and they cannot.
pub fn chromium_or_skip() -> bool {
    let have = Path::new(driver::CHROMIUM).exists() && Path::new(driver::CHROMEDRIVER).exists();
    if have {
        return true;
    }
    let msg = "chromium/chromedriver not installed (apt-get install chromium chromium-driver)";
    if std::env::var("TUISONG_TEST_BROWSER").as_deref() == Ok("1") {
        panic!("TUISONG_TEST_BROWSER=1 but {msg}");
    }
    println!("skipped: {msg}");
    false
}

/// One browser test at a time: two cores do not run several Chromiums well, and the
/// waits are sized for one.
pub static BROWSER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where a screenshot named `name` is written.
pub fn screenshot_path(name: &str) -> PathBuf {
    let dir = if std::env::var("TUISONG_SCREENSHOTS").as_deref() == Ok("docs") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    dir.join(name)
}
