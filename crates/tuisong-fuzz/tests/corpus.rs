//! Replays every kept input of every fuzz target (`fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`) through the target's body, on stable Rust: an input
//! that once crashed stays a test.

use std::path::Path;

#[test]
fn every_kept_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (name, target) in tuisong_fuzz::TARGETS {
        let mut inputs = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                let data = std::fs::read(&path).expect("corpus file");
                let result = std::panic::catch_unwind(|| target(&data));
                assert!(result.is_ok(), "{name}: {} fails", path.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "{name} has a seed corpus in fuzz/corpus/{name}");
        replayed += inputs;
    }
    println!("replayed {replayed} inputs");
}

#[test]
fn the_targets_hold_for_plain_inputs() {
    for (_, target) in tuisong_fuzz::TARGETS {
        target(b"");
        target(b"\0\0\0");
        target("]]>\0]]]]><![CDATA[\0通知\0".as_bytes());
    }
}
