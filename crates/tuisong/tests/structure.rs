//! The shape of the workspace, checked on every `cargo test` so it cannot drift:
//! - no source file in `crates/*/src` is longer than 600 lines before its tests;
//! - no two modules of a crate import each other in a circle (at every level of the
//!   module tree, the sibling modules' `crate::`/`super::` references form a DAG);
//! - the device protocol's frames are defined in one place.
//!
//! It reads the sources as text: a reference is any `crate::a::b` or `super::a` path in
//! code (not in comments), including `use crate::{a, b::c}` groups. That is what a reader
//! follows, and it needs no tool beyond the test itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every crate's `src` folder.
fn crate_sources() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(workspace().join("crates")).expect("crates/") {
        let dir = e.expect("entry").path();
        if dir.join("src").is_dir() {
            let name = dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            out.push((name, dir.join("src")));
        }
    }
    out.sort();
    out
}

/// The lines of a file before its `#[cfg(test)]` module.
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .count()
}

/// `src/a/b.rs` → ["a", "b"]; `src/a/mod.rs` → ["a"]; `src/lib.rs` → [].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The leading path segments at `s` (`a::b::C` → [a, b, C]); stops at `{` or other.
fn segments(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let n = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if n == 0 {
            break;
        }
        out.push(rest[..n].to_owned());
        match rest[n..].strip_prefix("::") {
            Some(r) if r.starts_with(|c: char| is_ident(c)) => rest = r,
            _ => break,
        }
    }
    out
}

/// The items of a `{ … }` group at the start of `s`, split at top-level commas.
fn group_items(s: &str) -> Vec<&str> {
    let mut depth = 0;
    let mut items = Vec::new();
    let mut start = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    items.push(s[start..i].trim());
                    break;
                }
            }
            ',' if depth == 1 => {
                items.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// Paths (relative to the crate root) that one file's code refers to.
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    // `super` from `a/b.rs` (module a::b) and from `a/b/mod.rs` (also a::b) is `a`.
    let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| !l.starts_with("#[cfg(test)]")) {
        let code = line.split("//").next().unwrap_or("");
        for (anchor, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
            let mut from = 0;
            while let Some(i) = code[from..].find(anchor) {
                let at = from + i;
                from = at + anchor.len();
                let before = code[..at].chars().last();
                if before.is_some_and(|c| is_ident(c) || c == '$' || c == ':') {
                    continue;
                }
                let rest = &code[from..];
                let mut paths = Vec::new();
                if rest.starts_with('{') {
                    for item in group_items(rest) {
                        paths.push(segments(item));
                    }
                } else {
                    paths.push(segments(rest));
                }
                for p in paths {
                    let mut full = base.clone();
                    full.extend(p);
                    out.push(full);
                }
            }
        }
    }
    out
}

#[test]
fn no_source_file_is_longer_than_600_lines_before_its_tests() {
    let mut long = Vec::new();
    for (_, src) in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let n = code_lines(&std::fs::read_to_string(&f).expect("read"));
            if n > MAX_LINES {
                long.push(format!("{} has {n} lines", f.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these by concern:\n{}",
        long.join("\n")
    );
}

#[test]
fn no_two_modules_of_a_crate_import_each_other_in_a_circle() {
    let mut cycles = Vec::new();
    for (krate, src) in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
        let aliases = root_aliases(&src);
        // For each parent module: edges between its children.
        let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for f in &files {
            let from = module_of(&src, f);
            let text = std::fs::read_to_string(f).expect("read");
            for mut path in references(&from, &text) {
                if let Some(real) = path.first().and_then(|p| aliases.get(p)) {
                    path[0] = real.clone();
                }
                // The longest prefix that is a module file of this crate.
                let to = (0..=path.len())
                    .rev()
                    .map(|n| path[..n].to_vec())
                    .find(|p| modules.contains(p))
                    .unwrap_or_default();
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common == from.len() || common == to.len() {
                    continue; // within one module, or between a module and its own parent
                }
                graphs
                    .entry(from[..common].to_vec())
                    .or_default()
                    .entry(from[common].clone())
                    .or_default()
                    .insert(to[common].clone());
            }
        }
        for (parent, graph) in &graphs {
            if let Some(cycle) = find_cycle(graph) {
                let at = if parent.is_empty() {
                    "crate".to_owned()
                } else {
                    parent.join("::")
                };
                cycles.push(format!("{krate} ({at}): {}", cycle.join(" → ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// `pub use edge as http;` at the crate root: `crate::http::x` is `crate::edge::x`.
fn root_aliases(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for root in ["lib.rs", "main.rs"] {
        let Ok(text) = std::fs::read_to_string(src.join(root)) else {
            continue;
        };
        for line in text.lines() {
            let l = line.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            if let Some(rest) = l.strip_prefix("use ")
                && let Some((real, alias)) = rest.trim_end_matches(';').split_once(" as ")
            {
                let real = real.trim().trim_start_matches("crate::");
                if real.chars().all(is_ident) {
                    out.insert(alias.trim().to_owned(), real.to_owned());
                }
            }
        }
    }
    out
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_passes_a_dag() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn references_read_groups_super_and_skip_comments() {
    let m = vec!["service".to_owned(), "send".to_owned()];
    let text = "use crate::{clock::Millis, ids::{AppId, OpenId}};\nuse super::Platform;\n// crate::gone\nlet x = crate::policy::hold(1);\n";
    let refs = references(&m, text);
    assert_eq!(
        refs,
        vec![
            vec!["clock".to_owned(), "Millis".to_owned()],
            vec!["ids".to_owned()],
            vec!["service".to_owned(), "Platform".to_owned()],
            vec!["policy".to_owned(), "hold".to_owned()],
        ]
    );
}

#[test]
fn the_device_frames_are_defined_once() {
    let mut places = Vec::new();
    for (_, src) in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read");
            for name in ["enum ServerFrame", "enum ClientFrame"] {
                if text.contains(name) {
                    places.push(format!("{name} in {}", f.display()));
                }
            }
        }
    }
    assert_eq!(places.len(), 2, "frames defined in: {places:#?}");
}
