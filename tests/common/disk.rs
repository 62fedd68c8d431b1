//! Real small file systems for the buffer's disk faults: a tmpfs of a given
//! size (a full disk), remountable read-only (an SD card that turned
//! read-only). Mounting needs root; where the machine refuses, `mount` says
//! why and the caller decides (CI runs as root). Unmounted on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// A tmpfs of `size_kib` at `path` (created), or why not.
    pub fn mount(path: &Path, size_kib: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `mount -o remount,ro` (or `rw`): the card turned read-only, or back.
    pub fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.path)
            .status()
            .expect("mount");
        assert!(ok.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file must not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A tmpfs for a test that needs one. As root (CI) a failed mount fails the
/// test; otherwise the test is skipped with the reason printed.
pub fn tmpfs_or_skip(path: &Path, size_kib: u64) -> Option<Tmpfs> {
    match Tmpfs::mount(path, size_kib) {
        Ok(t) => Some(t),
        Err(e) if !running_as_root() => {
            eprintln!("SKIPPED: cannot mount a tmpfs without root ({e})");
            None
        }
        Err(e) => panic!("cannot mount a tmpfs as root: {e}"),
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}
