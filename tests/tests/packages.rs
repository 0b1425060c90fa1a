//! The packages: `packaging/build.sh` builds the .deb and the .rpm; the
//! .deb installs with `dpkg -i` on this (throwaway, root) machine, its
//! binaries run from /usr/bin, its units pass `systemd-analyze verify`, its
//! man pages render with `man -l`, and it removes and purges cleanly; the
//! .rpm holds the same files (`rpm -qpl` against `dpkg -c`).
//!
//! tests/run.sh installs dpkg, rpm, man-db and the packaging tools
//! (cargo-deb, cargo-generate-rpm) before `cargo test`. The package is
//! purged at the end even when the test fails, and the mcr user and group
//! its postinst creates are removed again when they did not exist before
//! (other tests expect a host without them: while the user exists, an
//! `mcrd` started as root switches to it, so this test is best not run
//! beside other suites on a shared machine; in the suite it runs alone,
//! as cargo runs test binaries one after the other).

use mcr_tests::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn exists(db: &str, name: &str) -> bool {
    run("getent", &[db, name]).status.success()
}

/// Purges the package on drop, removes the mcr user and group unless they
/// were there before, and gives /run/mcr back its owner and mode (the
/// postinst applies tmpfiles.d/mcr.conf to it) or removes it.
struct Installed {
    user_before: bool,
    group_before: bool,
    /// /run/mcr before: (mode, uid, gid).
    run_dir_before: Option<(u32, u32, u32)>,
}

fn run_dir_meta() -> Option<(u32, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/run/mcr")
        .ok()
        .map(|m| (m.mode() & 0o7777, m.uid(), m.gid()))
}

impl Installed {
    fn purge() {
        let _ = run("dpkg", &["--purge", "mcr"]);
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        Installed::purge();
        // --force: an mcrd started meanwhile (as root, it switches to an
        // existing user mcr) must not keep the user alive.
        for (db, before, cmd, args) in [
            (
                "passwd",
                self.user_before,
                "userdel",
                &["--force", "mcr"][..],
            ),
            ("group", self.group_before, "groupdel", &["mcr"][..]),
        ] {
            if !before && exists(db, "mcr") {
                let out = run(cmd, args);
                if !out.status.success() {
                    eprintln!("{cmd} mcr: {}", String::from_utf8_lossy(&out.stderr));
                }
            }
        }
        match self.run_dir_before {
            Some((mode, uid, gid)) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::os::unix::fs::chown("/run/mcr", Some(uid), Some(gid));
                let _ = std::fs::set_permissions("/run/mcr", std::fs::Permissions::from_mode(mode));
            }
            None => {
                let _ = std::fs::remove_dir("/run/mcr");
            }
        }
    }
}

fn package_file(ext: &str) -> PathBuf {
    let dir = repo().join("target/packages");
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some(ext))
        .collect();
    assert_eq!(found.len(), 1, "one .{ext} in {}: {found:?}", dir.display());
    found[0].clone()
}

/// Files (not directories) of the .deb, as absolute paths.
fn deb_files(deb: &Path) -> BTreeSet<String> {
    sh("dpkg", &["-c", deb.to_str().unwrap()])
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect()
}

/// The .rpm's files; its zsh completions go where Fedora's zsh looks
/// (/usr/share/zsh/site-functions), Debian's are in vendor-completions:
/// the one documented difference, mapped here.
fn rpm_files(rpm: &Path) -> BTreeSet<String> {
    sh("rpm", &["-qpl", rpm.to_str().unwrap()])
        .lines()
        .map(|l| {
            l.replace(
                "/usr/share/zsh/site-functions/",
                "/usr/share/zsh/vendor-completions/",
            )
        })
        .collect()
}

#[test]
fn deb_installs_verifies_renders_and_purges_and_rpm_has_the_same_files() {
    for tool in [
        "dpkg",
        "rpm",
        "man",
        "cargo-deb",
        "cargo-generate-rpm",
        "systemd-analyze",
    ] {
        assert!(
            have(tool),
            "{tool} not found: tests/run.sh installs it (apt-get install rpm man-db; cargo install --locked cargo-deb cargo-generate-rpm)"
        );
    }
    // The debug build the suite already has: no release build here.
    let t0 = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("packaging/build.sh"))
        .args(["--profile", "dev"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "packaging/build.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("packaging/build.sh --profile dev: {:?}", t0.elapsed());
    let deb = package_file("deb");
    let rpm = package_file("rpm");

    // Same files in both.
    let in_deb = deb_files(&deb);
    let in_rpm = rpm_files(&rpm);
    assert_eq!(
        in_deb,
        in_rpm,
        "only in .deb: {:?}\nonly in .rpm: {:?}",
        in_deb.difference(&in_rpm).collect::<Vec<_>>(),
        in_rpm.difference(&in_deb).collect::<Vec<_>>()
    );
    for f in [
        "/usr/bin/mcrd",
        "/usr/bin/mcrctl",
        "/usr/bin/mcrgen",
        "/usr/lib/systemd/system/mcrd.service",
        "/usr/lib/systemd/system/mcrd@.service",
        "/usr/lib/sysusers.d/mcr.conf",
        "/usr/lib/tmpfiles.d/mcr.conf",
        "/etc/mcr/mcrd.json5",
        "/usr/share/man/man8/mcrd.8.gz",
        "/usr/share/man/man8/mcrctl.8.gz",
        "/usr/share/man/man1/mcrgen.1.gz",
        "/usr/share/man/man5/mcr.json5.5.gz",
        "/usr/share/bash-completion/completions/mcrctl",
        "/usr/share/zsh/vendor-completions/_mcrctl",
        "/usr/share/fish/vendor_completions.d/mcrctl.fish",
        "/usr/share/doc/mcr/deployment.md",
    ] {
        assert!(in_deb.contains(f), "{f} not packaged: {in_deb:#?}");
    }
    assert!(
        !in_deb.iter().any(|f| f.contains("mcr-gen-docs")),
        "the generator is not shipped"
    );
    // The example config is configuration in both.
    let conffiles = sh(
        "sh",
        &[
            "-c",
            &format!(
                "dpkg-deb --ctrl-tarfile {} | tar -xO ./conffiles",
                deb.display()
            ),
        ],
    );
    assert_eq!(conffiles.trim(), "/etc/mcr/mcrd.json5");
    assert_eq!(
        sh("rpm", &["-qpc", rpm.to_str().unwrap()]).trim(),
        "/etc/mcr/mcrd.json5"
    );

    // Install.
    Installed::purge();
    let guard = Installed {
        user_before: exists("passwd", "mcr"),
        group_before: exists("group", "mcr"),
        run_dir_before: run_dir_meta(),
    };
    let out = run("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "dpkg -i: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = env!("CARGO_PKG_VERSION");
    for b in ["mcrd", "mcrctl", "mcrgen"] {
        let v = sh(&format!("/usr/bin/{b}"), &["--version"]);
        assert_eq!(v.trim(), format!("{b} {version}"));
    }
    let check = run("/usr/bin/mcrd", &["check-config", "/etc/mcr/mcrd.json5"]);
    assert!(check.status.success(), "{check:?}");
    assert!(exists("passwd", "mcr"), "postinst did not create user mcr");
    assert!(
        Path::new("/run/mcr").is_dir(),
        "postinst did not create /run/mcr"
    );

    // The installed units verify (the template as an instance).
    let dir = TempDir::new(&format!("{}-pkg", unique_tag()));
    for (unit, as_name) in [
        ("/usr/lib/systemd/system/mcrd.service", "mcrd.service"),
        ("/usr/lib/systemd/system/mcrd@.service", "mcrd@red.service"),
    ] {
        let text = std::fs::read_to_string(unit).unwrap();
        assert!(
            text.contains("ExecReload=/bin/kill -HUP $MAINPID"),
            "{unit}"
        );
        let copy = dir.file(as_name, &text);
        let out = run("systemd-analyze", &["verify", copy.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "verify {unit}: {stderr}");
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("/run/netns/"))
            .collect();
        assert!(problems.is_empty(), "{unit}: {problems:#?}");
    }

    // Every man page renders without troff warnings.
    for page in [
        "/usr/share/man/man8/mcrd.8.gz",
        "/usr/share/man/man8/mcrctl.8.gz",
        "/usr/share/man/man1/mcrgen.1.gz",
        "/usr/share/man/man5/mcr.json5.5.gz",
    ] {
        let out = Command::new("man")
            .args(["-l", page])
            .env("MANWIDTH", "80")
            .env_remove("MAN_KEEP_FORMATTING")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man -l {page}: {stderr}");
        assert!(stderr.trim().is_empty(), "man -l {page} warned: {stderr}");
        assert!(text.contains("NAME") && text.len() > 500, "{page}: {text}");
    }

    // Remove: everything but the conffile goes; purge: that too.
    let out = run("dpkg", &["-r", "mcr"]);
    assert!(out.status.success(), "dpkg -r: {out:?}");
    for f in &in_deb {
        if f != "/etc/mcr/mcrd.json5" {
            assert!(!Path::new(f).exists(), "{f} left after dpkg -r");
        }
    }
    assert!(
        Path::new("/etc/mcr/mcrd.json5").exists(),
        "dpkg -r removed the conffile"
    );
    let out = run("dpkg", &["--purge", "mcr"]);
    assert!(out.status.success(), "dpkg --purge: {out:?}");
    for f in &in_deb {
        assert!(!Path::new(f).exists(), "{f} left after dpkg --purge");
    }
    assert!(!Path::new("/etc/mcr").exists(), "/etc/mcr left after purge");
    let status = run("dpkg", &["-s", "mcr"]);
    assert!(!status.status.success(), "mcr still known to dpkg");
    let user_before = guard.user_before;
    drop(guard);
    assert_eq!(
        exists("passwd", "mcr"),
        user_before,
        "user mcr not restored"
    );
}
