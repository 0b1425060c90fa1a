//! One client connection: non-blocking reads cut into lines no longer than
//! [`MAX_LINE`], and a bounded queue of output.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// The longest request line accepted (1 MiB).
pub const MAX_LINE: usize = 1 << 20;
/// Bytes read from one client per poll round; the rest waits for the next.
pub const READ_PER_POLL: usize = 1 << 20;
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

pub struct Connection {
    stream: UnixStream,
    input: Vec<u8>,
    discarding: bool,
    output: VecDeque<u8>,
    pub last_activity: Instant,
    /// Once the peer has closed its side (or errored), nothing more is read.
    pub closed: bool,
    /// Event categories this client subscribed to (then it only streams
    /// events), and how many events it missed because it read too slowly.
    pub subscription: Option<Vec<String>>,
    pub events_dropped: u64,
}

impl Connection {
    pub fn new(stream: UnixStream) -> io::Result<Connection> {
        stream.set_nonblocking(true)?;
        Ok(Connection {
            stream,
            input: Vec::new(),
            discarding: false,
            output: VecDeque::new(),
            last_activity: Instant::now(),
            closed: false,
            subscription: None,
            events_dropped: 0,
        })
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Reads what is available (at most [`READ_PER_POLL`] bytes, so one
    /// fast writer cannot hold the supervisor) and returns the complete
    /// lines in it.
    pub fn read_lines(&mut self) -> Vec<Incoming> {
        let mut lines = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let mut read = 0;
        while read < READ_PER_POLL {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => {
                    read += n;
                    self.last_activity = Instant::now();
                    self.absorb(&buf[..n], &mut lines);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
        lines
    }

    fn absorb(&mut self, mut data: &[u8], lines: &mut Vec<Incoming>) {
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            let (head, rest) = data.split_at(pos);
            data = &rest[1..];
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if self.input.len() + head.len() > MAX_LINE {
                self.input.clear();
                lines.push(Incoming::TooLong);
                continue;
            }
            self.input.extend_from_slice(head);
            let line = std::mem::take(&mut self.input);
            match String::from_utf8(line) {
                Ok(s) => {
                    let s = s.trim_end_matches('\r');
                    if !s.trim().is_empty() {
                        lines.push(Incoming::Line(s.to_string()));
                    }
                }
                Err(_) => lines.push(Incoming::NotUtf8),
            }
        }
        if self.discarding {
            return;
        }
        if self.input.len() + data.len() > MAX_LINE {
            self.input.clear();
            self.discarding = true;
            lines.push(Incoming::TooLong);
        } else {
            self.input.extend_from_slice(data);
        }
    }

    /// Whether a partial line is waiting for its end.
    pub fn has_partial_line(&self) -> bool {
        !self.input.is_empty() || self.discarding
    }

    /// Queues `line` plus a newline. Returns false when the client has too
    /// much unread output already (the caller closes it).
    pub fn queue(&mut self, line: &str) -> bool {
        if self.output.len() + line.len() + 1 > MAX_PENDING_OUTPUT {
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

    #[test]
    fn lines_split_across_reads() {
        let (mut c, _peer) = conn();
        let mut out = Vec::new();
        c.absorb(b"{\"cmd\":", &mut out);
        assert!(out.is_empty());
        assert!(c.has_partial_line());
        c.absorb(b"\"ping\"}\n{\"cmd\":\"version\"}\r\n\n", &mut out);
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
        let (mut c, _peer) = conn();
        let mut out = Vec::new();
        let big = vec![b'x'; MAX_LINE / 2 + 1];
        c.absorb(&big, &mut out);
        c.absorb(&big, &mut out);
        c.absorb(&big, &mut out);
        c.absorb(b"tail\nok\n", &mut out);
        assert_eq!(out, vec![Incoming::TooLong, Incoming::Line("ok".into())]);
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let (mut c, _peer) = conn();
        let mut out = Vec::new();
        c.absorb(b"\xff\xfe\n", &mut out);
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
