//! The package recipes stay true to the crate: versions, the Yocto crate list,
//! the configs they install, and the service settings the README promises.

use hissrv::config::Config;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_yocto_crate_list_matches_cargo_lock() {
    let lock = read("Cargo.lock");
    let inc = read("cross/yocto/hissrv-crates.inc");
    let mut registry = 0;
    for pkg in lock.split("[[package]]").skip(1) {
        let field = |k: &str| {
            pkg.lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        if !field("source").is_some_and(|s| s.starts_with("registry+")) {
            continue;
        }
        registry += 1;
        let (name, version) = (field("name").unwrap(), field("version").unwrap());
        let checksum = field("checksum").unwrap();
        assert!(
            inc.contains(&format!("crate://crates.io/{name}/{version} \\")),
            "{name} {version} missing: run cross/yocto/update-crates.py"
        );
        assert!(
            inc.contains(&format!(
                "SRC_URI[{name}-{version}.sha256sum] = \"{checksum}\""
            )),
            "{name} {version} checksum differs: run cross/yocto/update-crates.py"
        );
    }
    assert_eq!(inc.matches("crate://crates.io/").count(), registry);
}

#[test]
fn every_package_recipe_carries_the_crate_version() {
    let version = env!("CARGO_PKG_VERSION");
    assert!(read("cross/openwrt/hissrv/Makefile").contains(&format!("PKG_VERSION:={version}\n")));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("cross/yocto/hissrv_{version}.bb"))
            .exists(),
        "the Yocto recipe is named after the version"
    );
}

#[test]
fn packaged_configs_are_valid_and_keep_the_buffer_where_it_survives_a_reboot() {
    let debian = Config::from_yaml(&read("cross/debian/hissrv.yaml")).unwrap();
    // systemd's StateDirectory=hissrv is /var/lib/hissrv, the only writable place.
    assert!(read("cross/debian/hissrv.service").contains("StateDirectory=hissrv\n"));
    assert!(debian.buffer.path.starts_with("/var/lib/hissrv/"));
    let openwrt = Config::from_yaml(&read("cross/openwrt/hissrv/files/hissrv.yaml")).unwrap();
    // /tmp and /var are RAM on OpenWrt.
    assert!(!openwrt.buffer.path.starts_with("/tmp") && !openwrt.buffer.path.starts_with("/var"));
    // The init script asks the agent for buffer.path (no YAML by regex).
    let init = read("cross/openwrt/hissrv/files/hissrv.init");
    assert!(init.contains("\"$PROG\" check-config \"$CONF\" --get buffer.path"));
}

#[test]
fn the_services_restart_reload_with_sighup_and_give_the_stop_its_time() {
    let unit = read("cross/debian/hissrv.service");
    for line in [
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    let stop_s: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    let shutdown_ms = Config::default().service.shutdown_timeout_ms;
    assert!(
        stop_s * 1000 > shutdown_ms,
        "SIGKILL must wait for the bounded stop"
    );
    let init = read("cross/openwrt/hissrv/files/hissrv.init");
    assert!(init.contains("procd_set_param respawn"));
    assert!(init.contains("procd_send_signal hissrv '*' HUP"));
    let term: u64 = init
        .lines()
        .find_map(|l| l.trim().strip_prefix("procd_set_param term_timeout "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(term * 1000 > shutdown_ms);
}

#[test]
fn the_debian_unit_starts_without_waiting_for_the_network_and_purge_removes_the_buffer() {
    let unit = read("cross/debian/hissrv.service");
    // Local writes are taken offline: no waiting for network-online.
    assert!(unit.lines().any(|l| l == "After=network.target"));
    assert!(!unit.contains("network-online"), "{unit}");
    // cargo-deb takes the maintainer scripts from cross/debian/ and puts
    // its systemd snippets at #DEBHELPER#.
    let postrm = read("cross/debian/postrm");
    assert!(postrm.starts_with("#!/bin/sh\n"));
    assert!(postrm.contains("#DEBHELPER#"));
    let purge = postrm
        .split("if [ \"$1\" = \"purge\" ]; then")
        .nth(1)
        .and_then(|rest| rest.split("\nfi\n").next())
        .expect("a purge branch");
    // DynamicUser's real state directory, and its symlink.
    for line in ["rm -rf /var/lib/private/hissrv", "rm -rf /var/lib/hissrv"] {
        assert!(
            purge.lines().any(|l| l.trim() == line),
            "purge lacks {line}"
        );
    }
    let ok = std::process::Command::new("sh")
        .args(["-n", "cross/debian/postrm"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("sh");
    assert!(ok.success(), "postrm is valid shell");
}

#[test]
fn the_yocto_recipe_pins_a_commit_whose_lock_file_its_crate_list_matches() {
    let bb = read(&format!(
        "cross/yocto/hissrv_{}.bb",
        env!("CARGO_PKG_VERSION")
    ));
    let rev = bb
        .lines()
        .find_map(|l| l.strip_prefix("SRCREV = \""))
        .and_then(|r| r.strip_suffix('"'))
        .expect("a pinned SRCREV");
    assert!(
        rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
        "{rev}"
    );
    assert!(!bb.contains("AUTOREV"));
    // The crate list is made from today's Cargo.lock (the test above): the
    // pinned commit must carry that same lock file.
    let out = std::process::Command::new("git")
        .args(["show", &format!("{rev}:Cargo.lock")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    if !out.status.success() {
        // Only a shallow clone may lack it; a full one must have it.
        let shallow = std::process::Command::new("git")
            .args(["rev-parse", "--is-shallow-repository"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"true"));
        assert!(
            shallow,
            "the pinned commit {rev} is not in this clone: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("SKIPPED: a shallow clone lacks the pinned commit {rev}");
        return;
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        read("Cargo.lock"),
        "Cargo.lock changed since the pinned commit: bump SRCREV (and the crate list)"
    );
    // And it builds what we test: nothing the build reads changed since
    // (found by review: the pin lagged behind src/ while the lock stood).
    let changed = std::process::Command::new("git")
        .args(["diff", "--stat", rev, "HEAD", "--"])
        .args([
            "src",
            "Cargo.toml",
            "Cargo.lock",
            ".cargo",
            "config",
            "cross/debian",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    assert!(
        changed.status.success() && changed.stdout.is_empty(),
        "the build's sources changed since SRCREV {rev}: pin the newest commit\n{}",
        String::from_utf8_lossy(&changed.stdout)
    );
    // The SQLite flags, read as the recipe reads them.
    let sed = bb
        .split("export LIBSQLITE3_FLAGS=\"$(")
        .nth(1)
        .and_then(|s| s.split(")\"\n").next())
        .expect("the LIBSQLITE3_FLAGS export")
        .replace("${S}", env!("CARGO_MANIFEST_DIR"));
    let flags = std::process::Command::new("sh")
        .args(["-c", &sed])
        .output()
        .expect("sh");
    let flags = String::from_utf8_lossy(&flags.stdout).trim().to_string();
    assert!(flags.contains("-DSQLITE_OMIT_LOAD_EXTENSION"), "{flags:?}");
    // Current oe-core's source directory; the build system strips.
    assert!(bb.contains("S = \"${UNPACKDIR}/${BB_GIT_DEFAULT_DESTSUFFIX}\"\n"));
    assert!(bb.contains("export CARGO_PROFILE_RELEASE_STRIP = \"false\"\n"));
}

#[test]
fn the_openwrt_recipe_keeps_the_tested_profile_and_sqlite_flags() {
    let mk = read("cross/openwrt/hissrv/Makefile");
    for line in [
        // The size profile's opt-level, as the static builds CI tests.
        "--config 'profile.release.opt-level=\"z\"'",
        "--config 'profile.release.panic=\"abort\"'",
        "--config 'profile.release.overflow-checks=false'",
        // CONFIG_DEBUG builds use the dev profile; the tables go there too.
        "--config 'profile.dev.panic=\"abort\"'",
        // The source's config file: LIBSQLITE3_FLAGS as in every tested build.
        "--config $(PKG_BUILD_DIR)/.cargo/config.toml",
        "$(call Build/Compile/Cargo,,$(HISSRV_CARGO_PROFILE))",
        // A checkout for development carries the config file along.
        "$(HISSRV_SOURCE_DIR)/.cargo $(PKG_BUILD_DIR)/",
        "PKG_SOURCE_URL:=https://github.com/hissrv/hissrv/releases/download/v$(PKG_VERSION)\n",
    ] {
        assert!(mk.contains(line), "Makefile lacks {line}");
    }
    let cargo = read("Cargo.toml");
    assert!(
        cargo.contains("[profile.size]\n")
            && cargo.contains("inherits = \"release\"\nopt-level = \"z\"\n"),
        "the size profile the Makefile's opt-level mirrors"
    );
    let config = read(".cargo/config.toml");
    assert!(
        config.contains("LIBSQLITE3_FLAGS = \"") && config.contains("-DSQLITE_OMIT_LOAD_EXTENSION")
    );
    // The file must not steer the feed's own linkers for its musl targets.
    assert!(!config.contains("[target.aarch64-unknown-linux-musl]\nlinker"));
}

#[test]
fn the_openwrt_release_tarball_is_reproducible_and_its_hash_is_the_recipes() {
    let run_on = |tag: &str, out: &str| {
        let o = std::process::Command::new("bash")
            .args(["cross/openwrt/release-source.sh", tag, out])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("bash");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let run = |out: &str| run_on("HEAD", out);
    let dir = std::env::temp_dir().join(format!("hissrv-release-{}", std::process::id()));
    let (a, b) = (dir.join("a"), dir.join("b"));
    let first = run(a.to_str().unwrap());
    assert_eq!(first, run(b.to_str().unwrap()), "the same bytes twice");
    let version = env!("CARGO_PKG_VERSION");
    assert!(first.starts_with(&format!("PKG_SOURCE:=hissrv-{version}.tar.gz\nPKG_HASH:=")));
    let list = std::process::Command::new("tar")
        .arg("tzf")
        .arg(a.join(format!("hissrv-{version}.tar.gz")))
        .output()
        .expect("tar");
    let list = String::from_utf8_lossy(&list.stdout);
    for f in ["Cargo.lock", ".cargo/config.toml", "src/main.rs"] {
        assert!(
            list.contains(&format!("hissrv-{version}/{f}\n")),
            "{f} missing"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Once the release tag exists, the recipe carries its tarball's hash.
    let tagged = std::process::Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", &format!("v{version}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("git")
        .success();
    let mk = read("cross/openwrt/hissrv/Makefile");
    if tagged {
        let c = dir.join("c");
        let hash_line = run_on(&format!("v{version}"), c.to_str().unwrap());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            mk.contains(hash_line.lines().nth(1).unwrap()),
            "bump PKG_HASH"
        );
    } else {
        assert!(
            mk.contains("PKG_HASH:=\n"),
            "no tag v{version} yet: no hash to carry"
        );
    }
}

#[test]
fn the_openwrt_service_runs_as_its_own_user_waits_for_its_disk_and_passes_shellcheck() {
    let init = read("cross/openwrt/hissrv/files/hissrv.init");
    assert!(init.contains("procd_set_param user \"$RUN_AS\""));
    assert!(read("cross/openwrt/hissrv/Makefile").contains("USERID:=hissrv:hissrv\n"));
    assert!(init.contains("procd_add_restart_mount_trigger"));
    // The packaged config: small quota on the flash, valid.
    let cfg = Config::from_yaml(&read("cross/openwrt/hissrv/files/hissrv.yaml")).unwrap();
    assert!(cfg.buffer.max_size_mb <= 16, "{}", cfg.buffer.max_size_mb);
    // procd's shell is busybox ash; shellcheck as POSIX sh (with `local`).
    let out = std::process::Command::new("shellcheck")
        .args([
            "-s",
            "sh",
            "-e",
            "SC3043",
            "cross/openwrt/hissrv/files/hissrv.init",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("shellcheck is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
