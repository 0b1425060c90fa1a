//! The client side of the control socket: connect, read the hello, send
//! one request per line, read one answer per line.

use mcr_controlplane::control::api::{Answer, Hello};
use mcr_controlplane::control::Request;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why mcrctl could not talk to mcrd; the Display text is what the operator
/// sees after `Error: `.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Permission denied connecting to {0}")]
    PermissionDenied(PathBuf),
    #[error("No mcrd is listening on {0} (is it running?)")]
    NotListening(PathBuf),
    #[error("{0} does not exist")]
    Missing(PathBuf),
    // `error`, not `source`: shown once, in this message.
    #[error("cannot connect to {path}: {error}")]
    Other { path: PathBuf, error: io::Error },
    #[error("the daemon did not answer within {} s (mcrd at {path}; raise --timeout if it is busy)", seconds(*.timeout))]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("lost the connection to mcrd at {path}: {reason}")]
    Protocol { path: PathBuf, reason: String },
}

/// A timeout as the operator gave it: `10`, `0.5`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

/// Whether a read failed because the socket's timeout passed.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A connection to mcrd's control socket.
pub struct Client {
    path: PathBuf,
    timeout: Duration,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// The daemon's first line.
    pub hello: Hello,
}

impl Client {
    /// Connects and reads the hello; every later answer must come within
    /// `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ConnectError> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => ConnectError::PermissionDenied(path.into()),
            io::ErrorKind::ConnectionRefused => ConnectError::NotListening(path.into()),
            io::ErrorKind::NotFound => ConnectError::Missing(path.into()),
            _ => ConnectError::Other {
                path: path.into(),
                error: e,
            },
        })?;
        let proto = |reason: String| ConnectError::Protocol {
            path: path.into(),
            reason,
        };
        // A write to a daemon that does not read blocks too: bound both.
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| proto(e.to_string()))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| proto(e.to_string()))?;
        let writer = stream.try_clone().map_err(|e| proto(e.to_string()))?;
        let mut client = Client {
            path: path.into(),
            timeout,
            reader: BufReader::new(stream),
            writer,
            hello: Hello {
                hello: String::new(),
                version: String::new(),
                protocol: 0,
            },
        };
        client.hello = client.read_line()?;
        Ok(client)
    }

    fn read_line<T: DeserializeOwned>(&mut self) -> Result<T, ConnectError> {
        let mut line = String::new();
        let proto = |reason: String| ConnectError::Protocol {
            path: self.path.clone(),
            reason,
        };
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(proto("mcrd closed the connection".into())),
            Ok(_) => serde_json::from_str(&line).map_err(|e| proto(format!("bad answer: {e}"))),
            Err(e) if timed_out(&e) => Err(ConnectError::Timeout {
                path: self.path.clone(),
                timeout: self.timeout,
            }),
            Err(e) => Err(proto(e.to_string())),
        }
    }

    /// Waits, without a time limit, for the next line (an event on a
    /// subscribed connection). None when mcrd closed the connection.
    pub fn next_event(&mut self) -> Result<Option<Value>, ConnectError> {
        let _ = self.reader.get_ref().set_read_timeout(None);
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| ConnectError::Protocol {
                    path: self.path.clone(),
                    reason: format!("bad event: {e}"),
                }),
            Err(e) => Err(ConnectError::Protocol {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Sends one request and returns the whole answer.
    pub fn request(&mut self, req: &Request) -> Result<Answer, ConnectError> {
        let mut line = req.to_line(None);
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(|e| {
            if timed_out(&e) {
                ConnectError::Timeout {
                    path: self.path.clone(),
                    timeout: self.timeout,
                }
            } else {
                ConnectError::Protocol {
                    path: self.path.clone(),
                    reason: e.to_string(),
                }
            }
        })?;
        self.read_line()
    }
}
