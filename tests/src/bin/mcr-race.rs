//! The hostile local user of the hardening tests, run as `nobody`:
//!
//! - `mcr-race symlink PATH TARGET STOP`: until the file STOP exists, as fast as it
//!   can: whenever a socket appears at PATH, replaces it with a symlink to
//!   TARGET (by renaming a symlink made in advance over it; the symlink is
//!   removed again a little later, so the next start gets as far as
//!   binding); and moves every other entry of PATH's directory (e.g. a
//!   private directory mcrd made there) aside, putting a symlink to
//!   TARGET's directory in its place;
//! - `mcr-race connect PATH STOP`: until the file STOP exists, connects to PATH in a
//!   loop and prints how many connections were accepted and how many got
//!   an answer (the hello line), and how many attempts it made.
//!
//! Either gives up after 60 s in any case, so a test that dies before
//! creating STOP leaves nothing running for long.

use std::io::{Read, Write};
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
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().expect("a directory");
    let name = path.file_name().expect("a file name").to_os_string();
    let target_dir = target.parent().expect("a directory");
    // A symlink made in advance and renamed over the socket: one atomic
    // syscall right after inotify reports the socket, so the swap lands
    // within microseconds of it appearing.
    let ready = dir.join(".atk");
    let _ = std::os::unix::fs::symlink(target, &ready);
    // SAFETY: inotify_init1 takes flags only.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(fd >= 0, "inotify_init1");
    let cdir = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: fd is our inotify descriptor, cdir a NUL-terminated path.
    let wd =
        unsafe { libc::inotify_add_watch(fd, cdir.as_ptr(), libc::IN_CREATE | libc::IN_MOVED_TO) };
    assert!(wd >= 0, "inotify_add_watch");
    let mut swaps = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while !done() {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 20) } <= 0 {
            // Quiet: take our symlink out of the next start's way.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                let _ = std::fs::remove_file(path);
            }
            continue;
        }
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let mut off = 0usize;
        while n > 0 && off + 16 <= n as usize {
            // struct inotify_event: wd, mask, cookie, len, then the name.
            let len = u32::from_ne_bytes(buf[off + 12..off + 16].try_into().unwrap()) as usize;
            let raw = &buf[off + 16..off + 16 + len];
            let entry = std::ffi::OsStr::from_bytes(raw.split(|b| *b == 0).next().unwrap_or(&[]));
            off += 16 + len;
            if entry == name {
                if std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_symlink())
                    && std::fs::rename(&ready, path).is_ok()
                {
                    swaps += 1;
                }
                let _ = std::os::unix::fs::symlink(target, &ready);
            } else if !entry.to_string_lossy().starts_with(".atk")
                && !entry.to_string_lossy().ends_with(".moved")
            {
                // Anything else mcrd makes here (its private directory):
                // moved aside, a symlink out of the directory in its place.
                let p = dir.join(entry);
                if std::fs::symlink_metadata(&p).is_ok_and(|m| !m.file_type().is_symlink()) {
                    let mut aside = p.clone().into_os_string();
                    aside.push(".moved");
                    if std::fs::rename(&p, &aside).is_ok() {
                        let _ = std::os::unix::fs::symlink(target_dir, &p);
                        swaps += 1;
                    }
                }
            }
        }
    }
    // The test may be gone (failed): never panic on a closed pipe.
    let _ = writeln!(std::io::stdout(), "{swaps}");
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
    let _ = writeln!(std::io::stdout(), "{accepted} {answered} {attempts}");
}
