//! The wall clock of one agent process shifted, its monotonic clock left
//! alone: `tests/support/clock_shim.c` built with gcc into the test's temp
//! dir and given to the agent as `LD_PRELOAD` with `HISSRV_TEST_WALL_OFFSET_S`.

use std::path::{Path, PathBuf};

/// Builds the shim into `dir`; its path.
pub fn build(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/clock_shim.c");
    let out = dir.join("clock_shim.so");
    let ok = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(src)
        .arg("-ldl")
        .status()
        .expect("gcc is installed");
    assert!(ok.success(), "gcc clock_shim.c");
    out
}

/// Seconds from now back to `target_s` after the epoch.
pub fn offset_to(target_s: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    target_s - now
}
