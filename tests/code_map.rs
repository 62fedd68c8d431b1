//! The code map (ARCHITECTURE.md) as a test: which stage folder of `src/` may
//! use which. Every `crate::<stage>` path in non-test code is an edge; an
//! edge must go down the layers below, so there is no cycle between stages
//! and nothing below reaches up. `cargo test --test code_map -- --nocapture`
//! prints the graph.
//!
//! Test code (`tests.rs`, `*_tests.rs`, and everything after a file's first
//! `#[cfg(test)]`) may reach anywhere and is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first: a stage may use stages of lower layers only.
/// Stages on one layer do not use each other. Keep in step with
/// ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    &["app", "cli"],
    &["ingest"],
    &["batch", "deliver", "archive"],
    &["wal"],
    &["route", "downsample"],
    &["observe"],
    &["tls"],
    &["config"],
    &["lineproto"],
    &["clock"],
];

/// Files that are the table of contents or the entry point, not a stage.
const NOT_STAGES: &[&str] = &["lib", "main"];

/// Most lines a source file may have ("one concern per file, 50-500 lines").
const MAX_FILE_LINES: usize = 500;

fn layer_of(stage: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&stage))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The stage a file belongs to: its folder under `src/`, or its own name.
fn stage_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src/");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

fn is_test_file(file: &Path) -> bool {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The stages `code` names as `crate::<stage>`.
fn used_stages(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Non-test code with comments dropped (a doc comment may name any module).
fn code_of(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or_default();
    body.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each stage with the stages it uses.
type Edges = BTreeMap<String, BTreeSet<String>>;

/// The stage graph, and every source file with its line count.
fn graph() -> (Edges, Vec<(PathBuf, usize)>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut edges = Edges::new();
    let mut sizes = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("a readable source file");
        sizes.push((f.clone(), text.lines().count()));
        let stage = stage_of(&src, f);
        if is_test_file(f) || NOT_STAGES.contains(&stage.as_str()) {
            continue;
        }
        let uses = edges.entry(stage.clone()).or_default();
        for used in used_stages(&code_of(&text)) {
            if used != stage {
                uses.insert(used);
            }
        }
    }
    (edges, sizes)
}

#[test]
fn every_stage_uses_only_the_layers_below_it_so_there_is_no_cycle() {
    let (edges, _) = graph();
    let mut wrong = Vec::new();
    for (from, uses) in &edges {
        let Some(lf) = layer_of(from) else {
            wrong.push(format!(
                "{from}: not a known stage (add it to LAYERS and ARCHITECTURE.md)"
            ));
            continue;
        };
        println!(
            "{from:>9} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        for to in uses {
            match layer_of(to) {
                Some(lt) if lt > lf => {}
                Some(_) => wrong.push(format!("{from} uses {to}: not a layer below it")),
                None => wrong.push(format!("{from} uses {to}: not a known stage")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the code map is broken:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_use_and_ignores_comments_and_tests() {
    let code = code_of(
        "use crate::wal::Wal;\n// crate::app is only named\nfn f() { crate::clock::now_ms(); }\n#[cfg(test)]\nmod tests { use crate::cli; }\n",
    );
    let used = used_stages(&code);
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        vec!["clock".to_string(), "wal".to_string()]
    );
    assert!(layer_of("wal") > layer_of("batch"), "batch may use wal");
    assert!(layer_of("wal") > layer_of("ingest"));
    assert!(layer_of("deliver") == layer_of("batch"), "siblings");
}

#[test]
fn no_source_file_outgrows_one_concern() {
    let (_, sizes) = graph();
    let big: Vec<String> = sizes
        .iter()
        .filter(|(_, n)| *n > MAX_FILE_LINES)
        .map(|(p, n)| format!("{} ({n} lines)", p.display()))
        .collect();
    assert!(big.is_empty(), "split these: {big:?}");
}
