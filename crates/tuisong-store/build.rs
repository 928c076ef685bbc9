//! Tests that need a local service are marked ignored, with the reason, when its
//! variable is not set at build time — so a run without PostgreSQL or NATS says
//! "ignored, needs …" instead of a silent "ok". The tests also check at run time.

fn main() {
    for (var, cfg) in [
        ("TUISONG_TEST_PG", "tuisong_no_pg"),
        ("TUISONG_TEST_NATS", "tuisong_no_nats"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
