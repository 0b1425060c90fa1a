//! One client connection: non-blocking reads cut into lines no longer than
//! [`MAX_LINE`], and a bounded queue of output.
//!
//! Lines are taken one at a time ([`Connection::next_line`]) and the socket
//! is read only when no complete line is buffered, so what one client can
//! queue is at most one read chunk plus one partial line: a client that
//! pipelines thousands of requests leaves them in its own socket buffer,
//! where they cost us nothing and are dropped with the socket if it hangs up.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// The longest request line accepted (1 MiB).
pub const MAX_LINE: usize = 1 << 20;
/// Bytes read from a client at once; read again only once they are used up.
pub const READ_CHUNK: usize = 64 * 1024;
/// Output queued for a client that does not read: past this it is closed
/// rather than letting it hold memory.
pub const MAX_PENDING_OUTPUT: usize = 16 << 20;

/// What reading produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Line(String),
    /// A line longer than [`MAX_LINE`]; its bytes were discarded up to the
    /// next newline.
    TooLong,
    /// A line that is not UTF-8.
    NotUtf8,
}

/// One control client.
pub struct Connection {
    stream: UnixStream,
    /// Received bytes; `input[start..]` is not consumed yet.
    input: Vec<u8>,
    start: usize,
    /// `input[start..scanned]` holds no newline (saves rescanning a long
    /// partial line on every read).
    scanned: usize,
    /// Dropping the rest of an over-long line, up to its newline.
    discarding: bool,
    output: VecDeque<u8>,
    /// Last time the client sent or took bytes.
    pub last_activity: Instant,
    /// Once the peer has closed its side (or errored), nothing more is read.
    pub closed: bool,
    /// Event categories this client subscribed to (then it only streams
    /// events), and how many events it missed because it read too slowly.
    pub subscription: Option<Vec<String>>,
    /// Events this subscriber missed since its last delivered event.
    pub events_dropped: u64,
}

impl Connection {
    /// Wraps an accepted stream (made non-blocking).
    pub fn new(stream: UnixStream) -> io::Result<Connection> {
        stream.set_nonblocking(true)?;
        Ok(Connection {
            stream,
            input: Vec::new(),
            start: 0,
            scanned: 0,
            discarding: false,
            output: VecDeque::new(),
            last_activity: Instant::now(),
            closed: false,
            subscription: None,
            events_dropped: 0,
        })
    }

    /// The client's socket.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Where the next newline is (absolute index into `input`), if one is
    /// buffered; remembers how far it looked.
    fn find_newline(&mut self) -> Option<usize> {
        let from = self.scanned.max(self.start);
        match self.input[from..].iter().position(|&b| b == b'\n') {
            Some(off) => {
                self.scanned = from + off;
                Some(from + off)
            }
            None => {
                self.scanned = self.input.len();
                None
            }
        }
    }

    /// Whether [`next_line`](Self::next_line) has something to return
    /// without reading.
    fn has_line(&mut self) -> bool {
        self.find_newline().is_some() || self.pending_len() > MAX_LINE
    }

    fn pending_len(&self) -> usize {
        self.input.len() - self.start
    }

    /// Reads one chunk (at most [`READ_CHUNK`] bytes) unless a complete line
    /// is already buffered or the peer closed. Returns whether bytes came.
    pub fn fill(&mut self) -> bool {
        if self.closed || self.has_line() {
            return false;
        }
        // Compact first: what was consumed is given back before more is
        // taken, so the buffer never exceeds one partial line plus a chunk.
        if self.start > 0 {
            self.input.drain(..self.start);
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
        // Into a stack buffer, then only what came is kept: a quiet client
        // costs one failed read, no allocation or zeroing (this runs for
        // every client every round).
        let mut buf = [0u8; READ_CHUNK];
        let got = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break 0;
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                Err(_) => {
                    self.closed = true;
                    break 0;
                }
            }
        };
        self.input.extend_from_slice(&buf[..got]);
        if self.input.is_empty() && self.input.capacity() > 0 {
            // Give the memory back while the client is quiet.
            self.input = Vec::new();
            self.scanned = 0;
        }
        if got > 0 {
            self.last_activity = Instant::now();
        }
        got > 0
    }

    /// The next buffered line, if a complete one is there. Does not read.
    pub fn next_line(&mut self) -> Option<Incoming> {
        loop {
            let Some(end) = self.find_newline() else {
                if self.discarding {
                    self.clear_input();
                } else if self.pending_len() > MAX_LINE {
                    // Report it once; drop the rest as it arrives.
                    self.clear_input();
                    self.discarding = true;
                    return Some(Incoming::TooLong);
                }
                return None;
            };
            let line_start = self.start;
            self.start = end + 1;
            self.scanned = self.start;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let head = &self.input[line_start..end];
            if head.len() > MAX_LINE {
                return Some(Incoming::TooLong);
            }
            match std::str::from_utf8(head) {
                Ok(s) => {
                    let s = s.trim_end_matches('\r');
                    if !s.trim().is_empty() {
                        return Some(Incoming::Line(s.to_string()));
                    }
                }
                Err(_) => return Some(Incoming::NotUtf8),
            }
        }
    }

    /// Drops every buffered input byte and its memory.
    pub fn clear_input(&mut self) {
        self.input = Vec::new();
        self.start = 0;
        self.scanned = 0;
    }

    /// Whether a request (or an error to report) is buffered.
    pub fn has_request(&mut self) -> bool {
        self.has_line()
    }

    /// Memory held for input (what the global partial-line budget counts).
    pub fn input_bytes(&self) -> usize {
        self.input.capacity()
    }

    /// Whether a partial line is waiting for its end.
    pub fn has_partial_line(&mut self) -> bool {
        (self.pending_len() > 0 && self.find_newline().is_none()) || self.discarding
    }

    /// Whether the peer closed both directions (POLLHUP): it can no longer
    /// read answers, so its queued requests are not worth executing. A
    /// half-close (`shutdown(SHUT_WR)`, as `socat` does) is not a hang-up.
    pub fn hung_up(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd; a zero timeout never blocks.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
    }

    /// Queues `line` plus a newline. Returns false when the client has too
    /// much unread output already (the caller closes it).
    ///
    /// One line is always taken into an empty queue: `stats` at 100,000
    /// rules is over the cap by itself, and no further request of this
    /// client is executed while its answer waits (see
    /// [`OUTPUT_HIGH_WATER`](super::server::OUTPUT_HIGH_WATER)), so a client
    /// holds at most one such answer.
    pub fn queue(&mut self, line: &str) -> bool {
        if !self.output.is_empty() && self.output.len() + line.len() + 1 > MAX_PENDING_OUTPUT {
            return false;
        }
        self.output.extend(line.as_bytes());
        self.output.push_back(b'\n');
        true
    }

    /// Bytes queued and not yet written.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    /// Writes as much queued output as the socket takes now.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.output.is_empty() {
            let (front, _) = self.output.as_slices();
            match self.stream.write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.output.drain(..n);
                    self.last_activity = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (Connection, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Connection::new(a).unwrap(), b)
    }

    /// Sends `data`, then reads and takes lines until none is left.
    fn feed(c: &mut Connection, peer: &mut UnixStream, data: &[u8], out: &mut Vec<Incoming>) {
        for chunk in data.chunks(32 * 1024) {
            peer.write_all(chunk).unwrap();
            loop {
                while let Some(l) = c.next_line() {
                    out.push(l);
                }
                if !c.fill() {
                    break;
                }
            }
        }
    }

    #[test]
    fn lines_split_across_reads() {
        let (mut c, mut peer) = conn();
        let mut out = Vec::new();
        feed(&mut c, &mut peer, b"{\"cmd\":", &mut out);
        assert!(out.is_empty());
        assert!(c.has_partial_line());
        feed(
            &mut c,
            &mut peer,
            b"\"ping\"}\n{\"cmd\":\"version\"}\r\n\n",
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                Incoming::Line("{\"cmd\":\"ping\"}".into()),
                Incoming::Line("{\"cmd\":\"version\"}".into())
            ]
        );
        assert!(!c.has_partial_line());
    }

    #[test]
    fn oversized_line_is_reported_once_and_skipped() {
        let (mut c, mut peer) = conn();
        let mut out = Vec::new();
        let big = vec![b'x'; MAX_LINE / 2 + 1];
        feed(&mut c, &mut peer, &big, &mut out);
        feed(&mut c, &mut peer, &big, &mut out);
        feed(&mut c, &mut peer, &big, &mut out);
        feed(&mut c, &mut peer, b"tail\nok\n", &mut out);
        assert_eq!(out, vec![Incoming::TooLong, Incoming::Line("ok".into())]);
        assert!(c.input_bytes() <= MAX_LINE + 2 * READ_CHUNK);
    }

    #[test]
    fn pipelined_lines_are_read_one_chunk_at_a_time() {
        let (mut c, mut peer) = conn();
        let many = "{\"cmd\":\"ping\"}\n".repeat(20_000);
        peer.write_all(&many.as_bytes()[..100_000]).unwrap();
        assert!(c.fill());
        // One chunk was read, not everything the socket holds.
        assert!(c.input_bytes() <= READ_CHUNK, "{}", c.input_bytes());
        assert!(!c.fill(), "no read while a complete line is buffered");
        let mut n = 0;
        while c.next_line().is_some() {
            n += 1;
        }
        assert_eq!(n, READ_CHUNK / 15);
    }

    #[test]
    fn hang_up_is_seen_but_half_close_is_not() {
        let (c, peer) = conn();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(!c.hung_up());
        drop(peer);
        assert!(c.hung_up());
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let (mut c, mut peer) = conn();
        let mut out = Vec::new();
        feed(&mut c, &mut peer, b"\xff\xfe\n", &mut out);
        assert_eq!(out, vec![Incoming::NotUtf8]);
    }

    #[test]
    fn output_is_bounded() {
        let (mut c, _peer) = conn();
        let chunk = "y".repeat(1 << 20);
        let mut accepted = 0;
        while c.queue(&chunk) {
            accepted += 1;
        }
        assert_eq!(accepted, MAX_PENDING_OUTPUT / ((1 << 20) + 1));
    }
}
