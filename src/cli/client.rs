//! A blocking client of the control socket (the operator CLI needs no async
//! runtime to send one line and read one back).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::proto::{ControlRequest, ControlResponse, MAX_LINE, StatusReport};

/// How long the client waits for an answer (not for `watch` lines).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (or it is not there, or not ours to open).
    #[error(
        "cannot reach the hapair daemon at {}: {source}; start hapair (`systemctl start hapair`) \
         or point --socket at its control socket",
        path.display()
    )]
    Unreachable {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// The connection broke.
    #[error("control socket {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The daemon answered something that is not a response.
    #[error("control socket {}: bad answer from the daemon: {reason}", path.display())]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// One connection to the daemon.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let writer = UnixStream::connect(path).map_err(|source| ClientError::Unreachable {
            path: path.to_owned(),
            source,
        })?;
        let reader = writer.try_clone().map_err(|source| ClientError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Client {
            path: path.to_owned(),
            writer,
            reader: BufReader::new(reader),
        })
    }

    fn io(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Sends one request line.
    pub fn send(&mut self, req: &ControlRequest) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        self.writer.write_all(&line).map_err(|e| self.io(e))
    }

    /// Reads one response line; `None` at end of stream.
    pub fn recv(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<ControlResponse>, ClientError> {
        self.reader
            .get_ref()
            .set_read_timeout(timeout)
            .map_err(|e| self.io(e))?;
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64 * 64)
            .read_until(b'\n', &mut line)
            .map_err(|e| self.io(e))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&line)
            .map(Some)
            .map_err(|e| ClientError::Protocol {
                path: self.path.clone(),
                reason: format!("{e}: {}", String::from_utf8_lossy(&line).trim_end()),
            })
    }

    /// Sends `req` and waits for its answer.
    pub fn request(&mut self, req: &ControlRequest) -> Result<ControlResponse, ClientError> {
        if let Err(e) = self.send(req) {
            // A daemon that refuses the caller answers and closes before it
            // reads anything, so the write may break: its answer is still
            // there to read, and says more than "broken pipe".
            return match self.recv(Some(REPLY_TIMEOUT)) {
                Ok(Some(resp)) => Ok(resp),
                _ => Err(e),
            };
        }
        self.recv(Some(REPLY_TIMEOUT))?
            .ok_or_else(|| ClientError::Protocol {
                path: self.path.clone(),
                reason: "the daemon closed the connection without an answer".into(),
            })
    }

    /// Sends `watch` and calls `each` with every status until it returns
    /// `false`, the daemon ends the stream (`Ok`), or it answers an error
    /// (returned as the response).
    pub fn watch(
        &mut self,
        mut each: impl FnMut(&StatusReport) -> bool,
    ) -> Result<Option<ControlResponse>, ClientError> {
        self.send(&ControlRequest::Watch)?;
        loop {
            let Some(resp) = self.recv(None)? else {
                return Ok(None);
            };
            match &resp.status {
                Some(s) if resp.ok => {
                    if !each(s) {
                        return Ok(None);
                    }
                }
                _ => return Ok(Some(resp)),
            }
        }
    }
}
