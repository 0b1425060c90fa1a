//! The hostile local user of the hardening tests, run as `nobody`:
//!
//! - `mcr-race symlink PATH TARGET STOP`: until the file STOP exists, as fast as it
//!   can: whenever a socket appears at PATH, replaces it with a symlink to
//!   TARGET (the symlink is removed again on the next round, so the next
//!   start gets as far as binding); and moves every other entry of PATH's
//!   directory (e.g. a private directory mcrd made there) aside, putting a
//!   symlink to TARGET's directory in its place;
//! - `mcr-race connect PATH STOP`: until the file STOP exists, connects to PATH in a
//!   loop and prints how many connections were accepted and how many got
//!   an answer (the hello line), and how many attempts it made.
//!
//! Either gives up after 60 s in any case, so a test that dies before
//! creating STOP leaves nothing running for long.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest either loop runs.
const MAX_RUN: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let stop = |s: &str| {
        let (file, until) = (Path::new(s).to_path_buf(), Instant::now() + MAX_RUN);
        move || file.exists() || Instant::now() > until
    };
    match args.get(1).map(String::as_str) {
        Some("symlink") => symlink(Path::new(&args[2]), Path::new(&args[3]), stop(&args[4])),
        Some("connect") => connect(Path::new(&args[2]), stop(&args[3])),
        _ => {
            eprintln!("usage: mcr-race symlink PATH TARGET STOP | connect PATH STOP");
            std::process::exit(2);
        }
    }
}

fn symlink(path: &Path, target: &Path, done: impl Fn() -> bool) {
    let dir = path.parent().expect("a directory");
    let target_dir = target.parent().expect("a directory");
    let mut swaps = 0u64;
    while !done() {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::symlink_metadata(path).map(|m| m.file_type()) {
            Ok(t) if t.is_socket() => {
                let _ = std::fs::remove_file(path);
                if std::os::unix::fs::symlink(target, path).is_ok() {
                    swaps += 1;
                }
            }
            Ok(t) if t.is_symlink() => {
                let _ = std::fs::remove_file(path);
            }
            _ => {}
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p == path || e.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
                    continue;
                }
                let mut aside = p.clone().into_os_string();
                aside.push(".moved");
                if std::fs::rename(&p, &aside).is_ok() {
                    let _ = std::os::unix::fs::symlink(target_dir, &p);
                    swaps += 1;
                }
            }
        }
    }
    println!("{swaps}");
}

fn connect(path: &Path, done: impl Fn() -> bool) {
    let (mut accepted, mut answered, mut attempts) = (0u64, 0u64, 0u64);
    while !done() {
        attempts += 1;
        if let Ok(mut s) = UnixStream::connect(path) {
            accepted += 1;
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut b = [0u8; 1];
            if matches!(s.read(&mut b), Ok(1)) {
                answered += 1;
            }
        }
    }
    println!("{accepted} {answered} {attempts}");
}
