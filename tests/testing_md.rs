//! TESTING.md names its tests as `path::function`: each must exist, or the
//! table claims coverage nothing gives.

#[test]
fn every_test_testing_md_names_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("TESTING.md")).unwrap();
    let mut missing = Vec::new();
    for part in text.split('`').skip(1).step_by(2) {
        let Some((path, name)) = part.split_once(".rs::") else {
            continue;
        };
        if !(path.starts_with("src/") || path.starts_with("tests/"))
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        // A module's tests may sit in its `_tests.rs` beside it.
        let found = [format!("{path}.rs"), format!("{path}_tests.rs")]
            .iter()
            .filter_map(|p| std::fs::read_to_string(root.join(p)).ok())
            .any(|src| src.contains(&format!("fn {name}(")));
        if !found {
            missing.push(format!("{path}.rs::{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "TESTING.md names tests that do not exist: {missing:?}"
    );
}
