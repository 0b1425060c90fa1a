//! The `bpf(2)` calls the fast path needs: a per-CPU counter array, program
//! load, and tcx links (attach, atomic program replace, detach on close).

use super::asm::Insn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_PROG_LOAD: i32 = 5;
const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;
const BPF_MAP_LOOKUP_BATCH: i32 = 24;
const BPF_LINK_CREATE: i32 = 28;
const BPF_LINK_UPDATE: i32 = 29;
const BPF_MAP_DELETE_ELEM: i32 = 3;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
/// tcx ingress hook (kernel 6.6+): attached through a link, so closing the
/// link's fd detaches the program and a crash leaves nothing behind.
const BPF_TCX_INGRESS: u32 = 46;

/// `union bpf_attr`, written field by field at the kernel's offsets.
struct Attr([u64; 16]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 16])
    }

    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        let bytes = self.bytes_mut();
        bytes[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        let bytes = self.bytes_mut();
        bytes[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: [u64; 16] is 128 initialised bytes with no padding; any
        // byte pattern is a valid u64.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), 128) }
    }

    fn call(&mut self, cmd: i32) -> io::Result<i64> {
        // SAFETY: the attr buffer is 128 bytes, zeroed past the fields set,
        // and every pointer stored in it refers to memory the caller keeps
        // alive for the duration of the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                self.0.as_mut_ptr(),
                std::mem::size_of_val(&self.0),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    fn call_fd(&mut self, cmd: i32) -> io::Result<OwnedFd> {
        let fd = self.call(cmd)?;
        // SAFETY: the kernel returned a new file descriptor that nothing else
        // owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// A per-CPU array of `entries` values of `value_size` bytes.
pub fn percpu_array(value_size: u32, entries: u32) -> io::Result<OwnedFd> {
    Attr::new()
        .u32(0, BPF_MAP_TYPE_PERCPU_ARRAY)
        .u32(4, 4)
        .u32(8, value_size)
        .u32(12, entries)
        .call_fd(BPF_MAP_CREATE)
}

/// A hash map of `entries` keys of `key_size` bytes, values of
/// `value_size` bytes (preallocated: an update never allocates).
pub fn hash_map(key_size: u32, value_size: u32, entries: u32) -> io::Result<OwnedFd> {
    Attr::new()
        .u32(0, BPF_MAP_TYPE_HASH)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, entries)
        .call_fd(BPF_MAP_CREATE)
}

/// A program array of `entries` slots, for `bpf_tail_call`. Its entries are
/// cleared by the kernel when the last file descriptor of the map is
/// closed, even while a program that uses it runs: keep the fd.
pub fn prog_array(entries: u32) -> io::Result<OwnedFd> {
    Attr::new()
        .u32(0, BPF_MAP_TYPE_PROG_ARRAY)
        .u32(4, 4)
        .u32(8, 4)
        .u32(12, entries)
        .call_fd(BPF_MAP_CREATE)
}

/// Puts `prog` at `index` of a program array, replacing what was there in
/// one step (a tail call runs the old program or the new one). The array
/// holds its own reference: `prog`'s fd may be closed afterwards.
pub fn prog_array_set(map: &OwnedFd, index: u32, prog: &OwnedFd) -> io::Result<()> {
    let fd = prog.as_raw_fd() as u32;
    Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .u64(8, &index as *const u32 as u64)
        .u64(16, &fd as *const u32 as u64)
        .call(BPF_MAP_UPDATE_ELEM)
        .map(|_| ())
}

/// Sets `key` to `value` in a hash map (created or replaced).
pub fn map_set(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_ptr() as u64)
        .call(BPF_MAP_UPDATE_ELEM)
        .map(|_| ())
}

/// Deletes `key` from a map (a hash map key, or a program array's u32
/// index); a key already absent is no error.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    match Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .call(BPF_MAP_DELETE_ELEM)
    {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads per-CPU elements 0.. in one call: `out` holds `keys.len()`
/// elements of `words` u64s per possible CPU each. Returns how many were
/// read (fewer at the end of the array).
pub fn lookup_batch(map: &OwnedFd, keys: &mut [u32], out: &mut [u64]) -> io::Result<usize> {
    let mut next = 0u32;
    let mut attr = Attr::new();
    attr.u64(0, 0) // in_batch: NULL, from the start
        .u64(8, &mut next as *mut u32 as u64)
        .u64(16, keys.as_mut_ptr() as u64)
        .u64(24, out.as_mut_ptr() as u64)
        .u32(32, keys.len() as u32)
        .u32(36, map.as_raw_fd() as u32);
    let rc = attr.call(BPF_MAP_LOOKUP_BATCH);
    let count = u32::from_ne_bytes(attr.bytes_mut()[32..36].try_into().expect("4 bytes")) as usize;
    match rc {
        Ok(_) => Ok(count),
        // ENOENT: the batch reached the end of the array; `count` is valid.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(count),
        Err(e) => Err(e),
    }
}

/// Writes one per-CPU element: `values` holds one value per possible CPU.
pub fn update(map: &OwnedFd, key: u32, values: &[u64]) -> io::Result<()> {
    Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .u64(8, &key as *const u32 as u64)
        .u64(16, values.as_ptr() as u64)
        .call(BPF_MAP_UPDATE_ELEM)
        .map(|_| ())
}

/// Loads a tc classifier. On a verifier rejection the error carries the end
/// of the verifier's log.
pub fn load_sched_cls(name: &str, prog: &[Insn]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_SCHED_CLS)
        .u32(4, prog.len() as u32)
        .u64(8, prog.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64);
    let n = name.len().min(15);
    attr.bytes_mut()[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
    match attr.call_fd(BPF_PROG_LOAD) {
        Ok(fd) => Ok(fd),
        Err(e)
            if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 1 << 20];
            let mut attr = Attr::new();
            attr.u32(0, BPF_PROG_TYPE_SCHED_CLS)
                .u32(4, prog.len() as u32)
                .u64(8, prog.as_ptr() as u64)
                .u64(16, license.as_ptr() as u64)
                .u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64);
            let _ = attr.call(BPF_PROG_LOAD);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(4).collect();
            Err(io::Error::new(
                e.kind(),
                format!(
                    "{e}; verifier: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Loads a tc classifier with the verifier's statistics (`BPF_LOG_STATS`):
/// the program and the log's last lines ("processed N insns ...",
/// "verification time ...").
#[cfg(test)]
pub fn load_sched_cls_stats(name: &str, prog: &[Insn]) -> io::Result<(OwnedFd, String)> {
    let license = c"GPL";
    let mut log = vec![0u8; 1 << 16];
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_SCHED_CLS)
        .u32(4, prog.len() as u32)
        .u64(8, prog.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 4)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64);
    let n = name.len().min(15);
    attr.bytes_mut()[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
    let fd = attr.call_fd(BPF_PROG_LOAD);
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]).into_owned();
    match fd {
        Ok(fd) => Ok((fd, text)),
        Err(e) => Err(io::Error::new(e.kind(), format!("{e}; verifier: {text}"))),
    }
}

/// Runs `prog` once on the frame `data` (`BPF_PROG_TEST_RUN`): its return
/// value and the frame as it left the program.
#[cfg(test)]
pub fn test_run(prog: &OwnedFd, data: &[u8]) -> io::Result<(u32, Vec<u8>)> {
    const BPF_PROG_TEST_RUN: i32 = 10;
    let mut out = vec![0u8; data.len() + 256];
    let mut attr = Attr::new();
    attr.u32(0, prog.as_raw_fd() as u32)
        .u32(8, data.len() as u32)
        .u32(12, out.len() as u32)
        .u64(16, data.as_ptr() as u64)
        .u64(24, out.as_mut_ptr() as u64)
        .u32(32, 1);
    attr.call(BPF_PROG_TEST_RUN)?;
    let b = attr.bytes_mut();
    let retval = u32::from_ne_bytes(b[4..8].try_into().expect("4 bytes"));
    let len = u32::from_ne_bytes(b[12..16].try_into().expect("4 bytes")) as usize;
    out.truncate(len);
    Ok((retval, out))
}

/// Attaches `prog` at the tcx ingress hook of `ifindex`, after any program
/// already there.
pub fn tcx_attach(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, BPF_TCX_INGRESS)
        .call_fd(BPF_LINK_CREATE)
}

/// Replaces the program behind a link in one step: every packet runs either
/// the old program or the new one.
pub fn link_update(link: &OwnedFd, prog: &OwnedFd) -> io::Result<()> {
    Attr::new()
        .u32(0, link.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .call(BPF_LINK_UPDATE)
        .map(|_| ())
}

/// The interface a tcx link is attached to; 0 once the link is defunct
/// (its interface was deleted, or left the namespace).
pub fn link_ifindex(link: &OwnedFd) -> io::Result<u32> {
    // struct bpf_link_info: type, id, prog_id (u32 each), then a union
    // aligned to 8 whose tcx member starts with the ifindex.
    let mut info = [0u8; 64];
    Attr::new()
        .u32(0, link.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64)
        .call(BPF_OBJ_GET_INFO_BY_FD)?;
    Ok(u32::from_ne_bytes([info[16], info[17], info[18], info[19]]))
}

/// CPUs the kernel sizes per-CPU map values for (None when unknown: a
/// guess could make a lookup write past the buffer).
pub fn possible_cpus() -> Option<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
}

fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = 0;
    for part in s.split(',') {
        let last = part.rsplit('-').next()?;
        max = max.max(last.parse::<usize>().ok()?);
    }
    Some(max + 1)
}

#[cfg(test)]
mod tests {
    use super::super::asm::{Asm, R0};
    use super::{link_ifindex, load_sched_cls, tcx_attach};
    use std::io;

    /// A tcx link names its interface while it lives and 0 once the
    /// interface is deleted: what `FastPath::attach` relies on to replace a
    /// defunct link. Needs root (a private network namespace and CAP_BPF);
    /// skipped without.
    #[test]
    fn link_names_its_interface_until_the_interface_goes() {
        // A thread of our own moves into a new network namespace, so the
        // veth below exists there and nowhere else, and the namespace goes
        // away with the thread.
        let outcome = std::thread::spawn(|| {
            // SAFETY: unshare only changes this thread's namespaces.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!("unshare: {}", io::Error::last_os_error()));
            }
            let ip = |args: &[&str]| {
                let ok = std::process::Command::new("ip")
                    .args(args)
                    .status()
                    .is_ok_and(|s| s.success());
                ok.then_some(()).ok_or(format!("ip {args:?} failed"))
            };
            ip(&[
                "link", "add", "mcrt0", "type", "veth", "peer", "name", "mcrt1",
            ])?;
            let ifindex = nix::net::if_::if_nametoindex("mcrt0").map_err(|e| e.to_string())?;
            let mut a = Asm::default();
            a.mov_imm(R0, -1); // TC_ACT_UNSPEC: carry on
            a.exit();
            let prog = load_sched_cls("mcr_test", &a.finish()?)
                .map_err(|e| format!("cannot load a BPF program ({e})"))?;
            let link = tcx_attach(&prog, ifindex).map_err(|e| format!("attach: {e}"))?;
            let before = link_ifindex(&link).map_err(|e| e.to_string())?;
            ip(&["link", "del", "mcrt0"])?;
            let after = link_ifindex(&link).map_err(|e| e.to_string())?;
            Ok((ifindex, before, after))
        })
        .join()
        .unwrap();
        match outcome {
            Ok((ifindex, before, after)) => {
                assert_eq!(before, ifindex);
                assert_eq!(
                    after, 0,
                    "a link to a deleted interface must read as defunct"
                );
            }
            Err(e) => eprintln!("skipped: {e}"),
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(super::parse_cpu_list("0-1"), Some(2));
        assert_eq!(super::parse_cpu_list("0"), Some(1));
        assert_eq!(super::parse_cpu_list("0-3,8-11"), Some(12));
        assert_eq!(super::parse_cpu_list("x"), None);
    }
}
