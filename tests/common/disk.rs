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

/// A pass-through FUSE file system over a directory that turns read-only on
/// demand while files stay open (`tests/support/ro_switch_fs.py`): the SD
/// card the kernel remounted read-only. Unmounted and stopped on drop.
pub struct ReadOnlySwitch {
    mountpoint: PathBuf,
    flag: PathBuf,
    fs: std::process::Child,
}

impl ReadOnlySwitch {
    /// Mounts `backing` at `mountpoint` (both created), or why not.
    pub fn mount(backing: &Path, mountpoint: &Path, flag: &Path) -> Result<ReadOnlySwitch, String> {
        for d in [backing, mountpoint] {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ro_switch_fs.py");
        let fs = Command::new("/usr/bin/python3")
            .arg(script)
            .args([backing, mountpoint, flag])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        let mut switch = ReadOnlySwitch {
            mountpoint: mountpoint.to_path_buf(),
            flag: flag.to_path_buf(),
            fs,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !switch.mounted() {
            if let Ok(Some(status)) = switch.fs.try_wait() {
                let mut why = String::new();
                if let Some(mut e) = switch.fs.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut why);
                }
                return Err(format!("the FUSE file system exited ({status}): {why}"));
            }
            if std::time::Instant::now() > deadline {
                return Err("the FUSE file system did not mount in 20 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(switch)
    }

    fn mounted(&self) -> bool {
        let target = self.mountpoint.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(target.as_str()))
        })
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The card turns read-only (`true`) or writable again.
    pub fn set_read_only(&self, on: bool) {
        if on {
            std::fs::write(&self.flag, b"").expect("flag file");
        } else {
            std::fs::remove_file(&self.flag).expect("flag file");
        }
    }
}

impl Drop for ReadOnlySwitch {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .status();
        let _ = self.fs.kill();
        let _ = self.fs.wait();
    }
}

/// A read-only-switchable file system for a test that needs one. Skipped,
/// with the reason printed, where the machine has no FUSE (`/dev/fuse`) or
/// no root; where it has both, a failed mount fails the test.
pub fn read_only_switch_or_skip(dir: &Path) -> Option<ReadOnlySwitch> {
    if !Path::new("/dev/fuse").exists() || !running_as_root() {
        eprintln!("SKIPPED: no /dev/fuse or not root: cannot mount a FUSE file system");
        return None;
    }
    match ReadOnlySwitch::mount(
        &dir.join("backing"),
        &dir.join("card"),
        &dir.join("read-only"),
    ) {
        Ok(s) => Some(s),
        Err(e) => panic!("cannot mount the read-only switch: {e} (CI installs python3-fusepy)"),
    }
}
