//! A minimal PostgreSQL client (frontend/backend protocol 3.0, over a plain
//! `TcpStream`, trust authentication only) and the commit recorder of lab
//! scenario 5: PostgreSQL on the DRBD filesystem, run by the `pgsql` agent.
//!
//! The recorder ([`record_commits`]) sends `INSERT INTO acks(id) VALUES (N)`
//! as a simple Query for N = 1, 2, ... and counts N acknowledged only once
//! `CommandComplete` and then `ReadyForQuery` arrive with no
//! `ErrorResponse`. Anything else (an error from the server, a broken or
//! silent connection) leaves N unacknowledged: the client reconnects every
//! [`RETRY`] and sends the same N again, so N may be in the table once or
//! twice, but an id is never logged as acknowledged unless the server said
//! it committed. The log has the format of [`crate::record`]'s client
//! (`conn CONN UNIX_MS`, `ack N UNIX_MS CONN`, flushed per line), so
//! [`crate::record::parse_acks`] and [`crate::record::lost`] read it; a
//! failed attempt adds a line `fail N UNIX_MS REASON` that they ignore.
//!
//! Message encoding and decoding are pure functions over bytes
//! ([`startup_message`], [`query_message`], [`parse_backend`]); the I/O
//! path is tested against a real PostgreSQL on the host (see the tests).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use crate::record::unix_ms;

/// Protocol version 3.0 as sent in the StartupMessage.
pub const PROTOCOL_3_0: i32 = 196_608;
/// Pause between reconnection attempts of the recorder.
pub const RETRY: Duration = Duration::from_millis(30);
/// How long the recorder waits for a connection to be made.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the recorder waits for any answer of the server (a power-cut
/// server never answers). A commit slower than this counts as not
/// acknowledged and is retried.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// The table the recorder inserts into.
pub const TABLE: &str = "acks";
/// The largest backend message accepted (a sanity bound, not a protocol one).
const MAX_MESSAGE: usize = 16 << 20;

/// Why a PostgreSQL exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection broke, timed out or could not be made.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The server asked for an authentication method other than trust.
    #[error(
        "the server wants authentication method {0} (only trust, AuthenticationOk, is supported)"
    )]
    Auth(i32),
    /// The server answered with an ErrorResponse.
    #[error("server error {code}: {message}")]
    Server {
        /// SQLSTATE (`C` field).
        code: String,
        /// Message (`M` field).
        message: String,
    },
    /// The server sent something this client does not expect.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// A backend message, decoded as far as this client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `R`: an authentication request; 0 is AuthenticationOk.
    Auth(i32),
    /// `S`: ParameterStatus (name, value).
    ParameterStatus(String, String),
    /// `K`: BackendKeyData.
    BackendKeyData,
    /// `Z`: ReadyForQuery with the transaction status (`I`, `T`, `E`).
    ReadyForQuery(u8),
    /// `C`: CommandComplete with its tag (`INSERT 0 1`).
    CommandComplete(String),
    /// `E`: ErrorResponse (SQLSTATE, message).
    Error {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
    },
    /// `N`: NoticeResponse.
    Notice,
    /// `T`: RowDescription.
    RowDescription,
    /// `D`: DataRow, its columns (NULL is `None`).
    DataRow(Vec<Option<String>>),
    /// `I`: EmptyQueryResponse.
    EmptyQuery,
    /// Any other message type (ignored).
    Other(u8),
}

fn put_cstr(buf: &mut Vec<u8>, s: &str) -> Result<(), PgError> {
    if s.as_bytes().contains(&0) {
        return Err(PgError::Protocol(format!("NUL byte in {s:?}")));
    }
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    Ok(())
}

fn len_i32(n: usize) -> Result<[u8; 4], PgError> {
    i32::try_from(n)
        .map(i32::to_be_bytes)
        .map_err(|_| PgError::Protocol(format!("message of {n} bytes is too long")))
}

/// The StartupMessage for `user` on `database` (protocol 3.0).
pub fn startup_message(user: &str, database: &str) -> Result<Vec<u8>, PgError> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", database)] {
        put_cstr(&mut body, k)?;
        put_cstr(&mut body, v)?;
    }
    body.push(0);
    let mut msg = len_i32(body.len() + 4)?.to_vec();
    msg.extend_from_slice(&body);
    Ok(msg)
}

/// A simple Query message (`Q`) for `sql`.
pub fn query_message(sql: &str) -> Result<Vec<u8>, PgError> {
    let mut body = Vec::with_capacity(sql.len() + 1);
    put_cstr(&mut body, sql)?;
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&len_i32(body.len() + 4)?);
    msg.extend_from_slice(&body);
    Ok(msg)
}

/// The Terminate message (`X`).
pub fn terminate_message() -> [u8; 5] {
    [b'X', 0, 0, 0, 4]
}

/// The length of the first complete backend message in `buf` (type byte,
/// length and body), or `None` if `buf` does not hold one yet.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, PgError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (4..=MAX_MESSAGE).contains(l))
        .ok_or_else(|| PgError::Protocol(format!("bad message length {len}")))?;
    Ok((buf.len() > len).then_some(len + 1))
}

/// Reads a NUL-terminated string at the start of `b`; returns it and the rest.
fn cstr(b: &[u8]) -> Result<(String, &[u8]), PgError> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| PgError::Protocol("unterminated string".into()))?;
    Ok((
        String::from_utf8_lossy(&b[..end]).into_owned(),
        &b[end + 1..],
    ))
}

fn be_i32(b: &[u8]) -> Result<i32, PgError> {
    b.get(..4)
        .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        .ok_or_else(|| PgError::Protocol("short message".into()))
}

/// Decodes one complete backend message (as delimited by [`frame_len`]).
pub fn parse_backend(msg: &[u8]) -> Result<Backend, PgError> {
    let (&ty, rest) = msg
        .split_first()
        .ok_or_else(|| PgError::Protocol("empty message".into()))?;
    let body = rest
        .get(4..)
        .ok_or_else(|| PgError::Protocol("short message".into()))?;
    Ok(match ty {
        b'R' => Backend::Auth(be_i32(body)?),
        b'S' => {
            let (k, r) = cstr(body)?;
            let (v, _) = cstr(r)?;
            Backend::ParameterStatus(k, v)
        }
        b'K' => Backend::BackendKeyData,
        b'Z' => Backend::ReadyForQuery(
            *body
                .first()
                .ok_or_else(|| PgError::Protocol("empty ReadyForQuery".into()))?,
        ),
        b'C' => Backend::CommandComplete(cstr(body)?.0),
        b'E' => {
            let (mut code, mut message) = (String::new(), String::new());
            let mut b = body;
            while let Some((&field, r)) = b.split_first() {
                if field == 0 {
                    break;
                }
                let (v, r) = cstr(r)?;
                match field {
                    b'C' => code = v,
                    b'M' => message = v,
                    _ => {}
                }
                b = r;
            }
            Backend::Error { code, message }
        }
        b'N' => Backend::Notice,
        b'T' => Backend::RowDescription,
        b'D' => {
            let n = body
                .get(..2)
                .map(|x| u16::from_be_bytes([x[0], x[1]]))
                .ok_or_else(|| PgError::Protocol("short DataRow".into()))?;
            let mut b = &body[2..];
            let mut cols = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let len = be_i32(b)?;
                b = &b[4..];
                if len < 0 {
                    cols.push(None);
                    continue;
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let v = b
                    .get(..len)
                    .ok_or_else(|| PgError::Protocol("short DataRow column".into()))?;
                cols.push(Some(String::from_utf8_lossy(v).into_owned()));
                b = &b[len..];
            }
            Backend::DataRow(cols)
        }
        b'I' => Backend::EmptyQuery,
        other => Backend::Other(other),
    })
}

/// What a simple query returned: the rows (text format) and the last
/// CommandComplete tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    /// DataRow columns, in order.
    pub rows: Vec<Vec<Option<String>>>,
    /// The CommandComplete tag, e.g. `INSERT 0 1` or `SELECT 3`.
    pub tag: String,
}

/// One connection to a server, authenticated and ready for a query.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `addr` (waiting at most `connect_timeout`), sends the
    /// StartupMessage and waits for AuthenticationOk and ReadyForQuery.
    /// Every later read waits at most `read_timeout`.
    pub fn connect(
        addr: SocketAddr,
        user: &str,
        database: &str,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Conn, PgError> {
        let stream = TcpStream::connect_timeout(&addr, connect_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_write_timeout(Some(read_timeout))?;
        let mut c = Conn {
            stream,
            buf: Vec::with_capacity(1024),
        };
        c.stream.write_all(&startup_message(user, database)?)?;
        let mut authed = false;
        loop {
            match c.next()? {
                Backend::Auth(0) => authed = true,
                Backend::Auth(m) => return Err(PgError::Auth(m)),
                Backend::Error { code, message } => return Err(PgError::Server { code, message }),
                Backend::ReadyForQuery(_) if authed => return Ok(c),
                Backend::ReadyForQuery(_) => {
                    return Err(PgError::Protocol(
                        "ReadyForQuery before AuthenticationOk".into(),
                    ));
                }
                _ => {}
            }
        }
    }

    /// The next backend message.
    fn next(&mut self) -> Result<Backend, PgError> {
        loop {
            if let Some(n) = frame_len(&self.buf)? {
                let msg = parse_backend(&self.buf[..n]);
                self.buf.drain(..n);
                return msg;
            }
            let mut chunk = [0u8; 8192];
            let got = self.stream.read(&mut chunk)?;
            if got == 0 {
                return Err(PgError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
    }

    /// Runs `sql` as one simple Query. Ok only when the server ended it with
    /// ReadyForQuery after a CommandComplete and sent no ErrorResponse; an
    /// ErrorResponse is returned as [`PgError::Server`] (after its
    /// ReadyForQuery, so the connection stays usable).
    pub fn simple_query(&mut self, sql: &str) -> Result<QueryResult, PgError> {
        self.stream.write_all(&query_message(sql)?)?;
        let mut res = QueryResult::default();
        let mut complete = false;
        let mut error = None;
        loop {
            match self.next()? {
                Backend::DataRow(cols) => res.rows.push(cols),
                Backend::CommandComplete(tag) => {
                    res.tag = tag;
                    complete = true;
                }
                Backend::EmptyQuery => complete = true,
                Backend::Error { code, message } => {
                    error.get_or_insert(PgError::Server { code, message });
                }
                Backend::ReadyForQuery(_) => {
                    return match (error, complete) {
                        (Some(e), _) => Err(e),
                        (None, true) => Ok(res),
                        (None, false) => Err(PgError::Protocol(
                            "ReadyForQuery without CommandComplete".into(),
                        )),
                    };
                }
                Backend::Auth(m) => {
                    return Err(PgError::Protocol(format!(
                        "authentication request {m} during a query"
                    )));
                }
                _ => {}
            }
        }
    }

    /// Sends Terminate and closes the connection.
    pub fn close(mut self) {
        let _ = self.stream.write_all(&terminate_message());
    }
}

/// What [`record_commits`] connects to and how many commits it makes.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// The server (the service address in the lab).
    pub addr: SocketAddr,
    /// The user (trust authentication).
    pub user: String,
    /// The database holding [`TABLE`].
    pub database: String,
    /// The first id.
    pub start: u64,
    /// Stop once this many ids are acknowledged (`None`: never).
    pub count: Option<u64>,
}

/// The commit recorder (see the module docs): inserts ids `start`,
/// `start + 1`, ... into [`TABLE`] and logs every acknowledged one to `log`.
/// Returns when `count` ids are acknowledged; only a failed write to `log`
/// is an error.
pub fn record_commits(opts: &RecorderOptions, log: &mut dyn Write) -> io::Result<()> {
    let mut n = opts.start;
    let mut acked = 0u64;
    let mut conn_id = 0u64;
    let fail = |n: u64, e: &PgError, log: &mut dyn Write| -> io::Result<()> {
        let reason = e.to_string().replace('\n', " ");
        writeln!(log, "fail {n} {} {reason}", unix_ms())?;
        log.flush()?;
        thread::sleep(RETRY);
        Ok(())
    };
    let mut last_fail: Option<String> = None;
    loop {
        if opts.count.is_some_and(|c| acked >= c) {
            return Ok(());
        }
        let mut c = match Conn::connect(
            opts.addr,
            &opts.user,
            &opts.database,
            CONNECT_TIMEOUT,
            READ_TIMEOUT,
        ) {
            Ok(c) => c,
            Err(e) => {
                // the same refusal a hundred times says nothing new
                let s = e.to_string();
                if last_fail.as_deref() == Some(s.as_str()) {
                    thread::sleep(RETRY);
                } else {
                    fail(n, &e, log)?;
                    last_fail = Some(s);
                }
                continue;
            }
        };
        last_fail = None;
        conn_id += 1;
        writeln!(log, "conn {conn_id} {}", unix_ms())?;
        log.flush()?;
        loop {
            if opts.count.is_some_and(|c| acked >= c) {
                c.close();
                return Ok(());
            }
            match c.simple_query(&format!("INSERT INTO {TABLE}(id) VALUES ({n})")) {
                Ok(r) if r.tag.starts_with("INSERT ") => {
                    writeln!(log, "ack {n} {} {conn_id}", unix_ms())?;
                    log.flush()?;
                    n += 1;
                    acked += 1;
                }
                Ok(r) => {
                    let e = PgError::Protocol(format!("unexpected tag {:?}", r.tag));
                    fail(n, &e, log)?;
                    break;
                }
                Err(e) => {
                    fail(n, &e, log)?;
                    break;
                }
            }
        }
    }
}

/// The ids in `psql -At -c 'SELECT id FROM acks'` output (one per line).
pub fn parse_ids(text: &str) -> Vec<u64> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// `hapair-recordd pgclient --addr A:P [--user U] [--db D] [--start N]
/// [--count N]`: runs [`record_commits`], logging to stdout. Returns the
/// exit code.
pub fn main_args(args: &[String]) -> i32 {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let usage = "usage: pgclient --addr ADDR:PORT [--user USER] [--db DB] [--start N] [--count N]";
    let Some(Ok(addr)) = flag("--addr").map(|a| a.parse()) else {
        eprintln!("{usage}");
        return 2;
    };
    let num = |name: &str| flag(name).map(|v| v.parse::<u64>());
    let (start, count) = match (num("--start"), num("--count")) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => {
            eprintln!("{usage}");
            return 2;
        }
        (s, c) => (s.and_then(Result::ok).unwrap_or(1), c.and_then(Result::ok)),
    };
    let opts = RecorderOptions {
        addr,
        user: flag("--user").unwrap_or_else(|| "postgres".into()),
        database: flag("--db").unwrap_or_else(|| "postgres".into()),
        start,
        count,
    };
    match record_commits(&opts, &mut io::stdout().lock()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pgclient: {e}");
            1
        }
    }
}

/// What the lab needs to run PostgreSQL 15 (Debian's layout) on the DRBD
/// filesystem under the `pgsql` agent.
pub mod lab {
    /// Debian's PostgreSQL 15 binaries.
    pub const BIN: &str = "/usr/lib/postgresql/15/bin";
    /// The port.
    pub const PORT: u16 = 5432;
    /// The unix socket directory (guest tmpfs; the agent creates it).
    pub const SOCKET_DIR: &str = "/run/postgresql";
    /// The server log in the guest (tmpfs; the agent creates it).
    pub const LOG: &str = "/var/log/pgsql.log";

    /// The data directory on the filesystem mounted at `mnt`.
    pub fn pgdata(mnt: &str) -> String {
        format!("{mnt}/pgdata")
    }

    /// A shell script (run as root in a guest with the DRBD filesystem
    /// mounted at `mnt`) that makes a cluster there, configures it for the
    /// lab and creates the recorder's table: initdb as `postgres`, then one
    /// start with `pg_ctl -w`, `CREATE TABLE`, and a fast stop.
    pub fn init_script(mnt: &str) -> String {
        let pgdata = pgdata(mnt);
        let table = super::TABLE;
        format!(
            r#"set -e
mkdir -p {SOCKET_DIR} && chown postgres:postgres {SOCKET_DIR}
mkdir {pgdata} && chown postgres:postgres {pgdata} && chmod 700 {pgdata}
cd /
runuser -u postgres -- {BIN}/initdb -D {pgdata} -U postgres -A trust -E UTF8 --locale=C >/dev/null
cat >> {pgdata}/postgresql.conf <<'EOF'
# lab scenario 5 (hwtest::pgclient::lab)
listen_addresses = '*'
port = {PORT}
unix_socket_directories = '{SOCKET_DIR}'
shared_buffers = 16MB
max_connections = 20
fsync = on
synchronous_commit = on
full_page_writes = on
huge_pages = off
dynamic_shared_memory_type = mmap
max_wal_size = 64MB
logging_collector = off
EOF
echo 'host all all 10.88.0.0/24 trust' >> {pgdata}/pg_hba.conf
runuser -u postgres -- {BIN}/pg_ctl -D {pgdata} -l {SOCKET_DIR}/init.log -w -t 120 start >/dev/null
runuser -u postgres -- {BIN}/psql -h {SOCKET_DIR} -p {PORT} -U postgres -d postgres -v ON_ERROR_STOP=1 -Atc 'CREATE TABLE {table}(id bigint)' >/dev/null
runuser -u postgres -- {BIN}/pg_ctl -D {pgdata} -w -t 120 stop -m fast >/dev/null
"#
        )
    }

    /// The hapair `[[resource]]` for the server through
    /// `ocf:heartbeat:pgsql`. Start and monitor get generous timeouts (each
    /// agent call forks dozens of processes, 40-110 ms each in UML). The
    /// stop gets 10 s: the lab pair's lease (`lock_timeout` 40 s) leaves
    /// room for no more (`hapair validate`: monitor_interval + max_io +
    /// stop_budget + margin < lock_timeout, the stop budget being the sum
    /// of the stop timeouts); `stop_escalate` 5 s has the agent try
    /// `-m fast` for 5 s, then `-m immediate` (a crash stop, which WAL
    /// recovery makes safe).
    pub fn resource_toml(mnt: &str) -> String {
        let pgdata = pgdata(mnt);
        format!(
            r#"[[resource]]
name = "svc"
type = "ocf:heartbeat:pgsql"
params = {{ pgctl = "{BIN}/pg_ctl", psql = "{BIN}/psql", pgdata = "{pgdata}", pgdba = "postgres", pgport = "{PORT}", socketdir = "{SOCKET_DIR}", pgdb = "postgres", logfile = "{LOG}", stop_escalate = "5" }}
start_timeout = "120s"
stop_timeout = "10s"
monitor_interval = "10s"
monitor_timeout = "60s"
"#
        )
    }

    /// `psql` in a guest, as `postgres` over the unix socket, `-At -c sql`.
    pub fn psql(sql: &str) -> String {
        format!(
            "cd / && runuser -u postgres -- {BIN}/psql -h {SOCKET_DIR} -p {PORT} -U postgres -d postgres -v ON_ERROR_STOP=1 -At -c \"{sql}\""
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::net::TcpListener;
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Instant;

    use crate::record::{self, parse_acks};

    fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty];
        m.extend_from_slice(&i32::try_from(body.len() + 4).unwrap().to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn startup_message_bytes() {
        let m = startup_message("postgres", "db1").unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&[0, 3, 0, 0]);
        want.extend_from_slice(b"user\0postgres\0database\0db1\0\0");
        let len = u32::try_from(want.len() + 4).unwrap().to_be_bytes();
        assert_eq!(&m[..4], &len);
        assert_eq!(&m[4..], &want[..]);
        assert_eq!(i32::from_be_bytes([m[4], m[5], m[6], m[7]]), PROTOCOL_3_0);
        assert!(startup_message("a\0b", "db").is_err());
    }

    #[test]
    fn query_and_terminate_bytes() {
        let m = query_message("SELECT 1").unwrap();
        assert_eq!(m, msg(b'Q', b"SELECT 1\0"));
        assert_eq!(terminate_message(), [b'X', 0, 0, 0, 4]);
        assert!(query_message("x\0").is_err());
    }

    #[test]
    fn frames_are_delimited() {
        let mut buf = msg(b'Z', b"I");
        buf.extend_from_slice(&msg(b'C', b"INSERT 0 1\0"));
        assert_eq!(frame_len(&buf).unwrap(), Some(6));
        assert_eq!(frame_len(&buf[..5]).unwrap(), None);
        assert_eq!(frame_len(&buf[..3]).unwrap(), None);
        assert_eq!(frame_len(&buf[6..]).unwrap(), Some(buf.len() - 6));
        assert!(frame_len(&[b'Z', 0, 0, 0, 2, 0]).is_err());
        assert!(frame_len(&[b'Z', 0xff, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn backend_messages_decode() {
        assert_eq!(
            parse_backend(&msg(b'R', &0i32.to_be_bytes())).unwrap(),
            Backend::Auth(0)
        );
        assert_eq!(
            parse_backend(&msg(b'R', &10i32.to_be_bytes())).unwrap(),
            Backend::Auth(10)
        );
        assert_eq!(
            parse_backend(&msg(b'S', b"server_version\x0015.8\0")).unwrap(),
            Backend::ParameterStatus("server_version".into(), "15.8".into())
        );
        assert_eq!(
            parse_backend(&msg(b'Z', b"T")).unwrap(),
            Backend::ReadyForQuery(b'T')
        );
        assert_eq!(
            parse_backend(&msg(b'C', b"INSERT 0 1\0")).unwrap(),
            Backend::CommandComplete("INSERT 0 1".into())
        );
        assert_eq!(
            parse_backend(&msg(
                b'E',
                b"SERROR\0VERROR\0C42P01\0Mrelation \"x\" does not exist\0P15\0\0"
            ))
            .unwrap(),
            Backend::Error {
                code: "42P01".into(),
                message: "relation \"x\" does not exist".into()
            }
        );
        let mut row = 2u16.to_be_bytes().to_vec();
        row.extend_from_slice(&2i32.to_be_bytes());
        row.extend_from_slice(b"42");
        row.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            parse_backend(&msg(b'D', &row)).unwrap(),
            Backend::DataRow(vec![Some("42".into()), None])
        );
        assert_eq!(
            parse_backend(&msg(b'K', &[0; 8])).unwrap(),
            Backend::BackendKeyData
        );
        assert_eq!(
            parse_backend(&msg(b'?', b"")).unwrap(),
            Backend::Other(b'?')
        );
        // truncated bodies are errors, not panics
        assert!(parse_backend(&msg(b'R', &[0, 0])).is_err());
        assert!(parse_backend(&msg(b'Z', b"")).is_err());
        assert!(parse_backend(&msg(b'C', b"no nul")).is_err());
        let mut short = 1u16.to_be_bytes().to_vec();
        short.extend_from_slice(&9i32.to_be_bytes());
        short.extend_from_slice(b"abc");
        assert!(parse_backend(&msg(b'D', &short)).is_err());
        assert!(parse_backend(&[]).is_err());
    }

    #[test]
    fn ids_from_psql_output() {
        assert_eq!(parse_ids("1\n2\n\n2\n 7 \nx\n"), vec![1, 2, 2, 7]);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(main_args(&a(&[])), 2);
        assert_eq!(main_args(&a(&["--addr", "nonsense"])), 2);
        assert_eq!(main_args(&a(&["--addr", "127.0.0.1:1", "--count", "x"])), 2);
    }

    /// A fake server that speaks just enough of the protocol to check the
    /// client's rule: an INSERT whose CommandComplete is followed by a
    /// dropped connection (no ReadyForQuery) is not acknowledged.
    #[test]
    fn command_complete_without_ready_is_not_an_ack() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for (i, s) in l.incoming().enumerate() {
                let mut s = s.unwrap();
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b); // startup
                s.write_all(&msg(b'R', &0i32.to_be_bytes())).unwrap();
                s.write_all(&msg(b'Z', b"I")).unwrap();
                let n = s.read(&mut b).unwrap(); // the query
                let q = String::from_utf8_lossy(&b[5..n.saturating_sub(1)]).into_owned();
                tx.send(q).unwrap();
                s.write_all(&msg(b'C', b"INSERT 0 1\0")).unwrap();
                if i > 0 {
                    s.write_all(&msg(b'Z', b"I")).unwrap();
                    let _ = s.read(&mut b); // Terminate
                }
                // first connection: closed before ReadyForQuery
            }
        });
        let mut log = Vec::new();
        let opts = RecorderOptions {
            addr,
            user: "u".into(),
            database: "d".into(),
            start: 7,
            count: Some(1),
        };
        record_commits(&opts, &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        let queries: Vec<String> = rx.try_iter().collect();
        assert_eq!(
            queries,
            vec![
                "INSERT INTO acks(id) VALUES (7)".to_string(),
                "INSERT INTO acks(id) VALUES (7)".to_string()
            ],
            "{log}"
        );
        let acks = parse_acks(&log);
        assert_eq!(acks.len(), 1, "{log}");
        assert_eq!((acks[0].n, acks[0].conn), (7, 2), "{log}");
        assert!(log.contains("fail 7 "), "{log}");
    }

    // ---- against a real PostgreSQL on the host ----

    const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

    /// A host command as `postgres` with a timeout, clean env, own process
    /// group, captured output; panics with its output on failure.
    fn as_postgres(args: &[&str]) -> String {
        let out = Command::new("/usr/bin/timeout")
            .arg("120")
            .args(["/usr/sbin/runuser", "-u", "postgres", "--"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .process_group(0)
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {}\n{text}", out.status);
        text
    }

    /// A throwaway cluster on 127.0.0.1 at a free port; stopped on drop.
    struct HostPg {
        dir: tempfile::TempDir,
        addr: SocketAddr,
    }

    impl HostPg {
        fn data(&self) -> PathBuf {
            self.dir.path().join("data")
        }

        fn ctl(&self, args: &[&str]) -> String {
            let data = self.data();
            let log = self.dir.path().join("log");
            let mut a = vec![
                format!("{PG_BIN}/pg_ctl"),
                "-D".into(),
                data.display().to_string(),
                "-l".into(),
                log.display().to_string(),
            ];
            a.extend(args.iter().map(|s| s.to_string()));
            as_postgres(&a.iter().map(String::as_str).collect::<Vec<_>>())
        }

        fn start() -> HostPg {
            assert!(
                nix::unistd::geteuid().is_root(),
                "this test runs PostgreSQL as user postgres through runuser: run it as root"
            );
            assert!(
                Path::new(PG_BIN).join("postgres").is_file(),
                "PostgreSQL 15 is not installed at {PG_BIN} (Debian package postgresql-15)"
            );
            let pg = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("no user postgres on this machine");
            let dir = tempfile::tempdir().unwrap();
            std::os::unix::fs::chown(dir.path(), Some(pg.uid.as_raw()), Some(pg.gid.as_raw()))
                .unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let h = HostPg {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
            };
            let data = h.data().display().to_string();
            as_postgres(&[
                &format!("{PG_BIN}/initdb"),
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--locale=C",
                "-E",
                "UTF8",
            ]);
            let conf = h.data().join("postgresql.conf");
            let mut c = fs::read_to_string(&conf).unwrap();
            c.push_str(&format!(
                "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
                 shared_buffers = 16MB\nmax_connections = 10\n",
                h.dir.path().display()
            ));
            fs::write(&conf, c).unwrap();
            // a user that must authenticate, first, so it wins over trust
            let hba = h.data().join("pg_hba.conf");
            let t = fs::read_to_string(&hba).unwrap();
            fs::write(
                &hba,
                format!("host all pwuser 127.0.0.1/32 scram-sha-256\n{t}"),
            )
            .unwrap();
            h.ctl(&["-w", "-t", "60", "start"]);
            h
        }

        fn conn(&self) -> Conn {
            Conn::connect(
                self.addr,
                "postgres",
                "postgres",
                CONNECT_TIMEOUT,
                READ_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.addr))
        }

        fn ids(&self) -> Vec<u64> {
            let r = self.conn().simple_query("SELECT id FROM acks").unwrap();
            r.rows
                .iter()
                .map(|row| row[0].as_deref().unwrap().parse().unwrap())
                .collect()
        }
    }

    impl Drop for HostPg {
        fn drop(&mut self) {
            let data = self.data().display().to_string();
            let _ = Command::new("/usr/bin/timeout")
                .args(["60", "/usr/sbin/runuser", "-u", "postgres", "--"])
                .args([
                    &format!("{PG_BIN}/pg_ctl"),
                    "-D",
                    &data,
                    "-m",
                    "immediate",
                    "stop",
                ])
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .status();
        }
    }

    #[test]
    fn real_postgres_queries_errors_and_auth() {
        let pg = HostPg::start();
        let mut c = pg.conn();
        let r = c.simple_query("CREATE TABLE acks(id bigint)").unwrap();
        assert_eq!(r.tag, "CREATE TABLE");
        let r = c.simple_query("INSERT INTO acks(id) VALUES (5)").unwrap();
        assert_eq!(r.tag, "INSERT 0 1");
        let r = c.simple_query("SELECT id, NULL::text FROM acks").unwrap();
        assert_eq!(r.rows, vec![vec![Some("5".to_string()), None]]);
        assert_eq!(r.tag, "SELECT 1");
        // an error leaves the connection usable
        match c.simple_query("INSERT INTO nosuch(id) VALUES (1)") {
            Err(PgError::Server { code, .. }) => assert_eq!(code, "42P01"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.simple_query("SELECT 1").unwrap().rows.len(), 1);
        c.close();
        match Conn::connect(pg.addr, "pwuser", "postgres", CONNECT_TIMEOUT, READ_TIMEOUT) {
            Err(PgError::Auth(10)) => {} // AuthenticationSASL
            other => panic!("expected an auth refusal, got {other:?}"),
        }
        match Conn::connect(
            pg.addr,
            "postgres",
            "nosuchdb",
            CONNECT_TIMEOUT,
            READ_TIMEOUT,
        ) {
            Err(PgError::Server { code, .. }) => assert_eq!(code, "3D000"),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// The recorder against a real server that is killed (`-m immediate`)
    /// and started again under it: it reconnects, and every acknowledged id
    /// is in the table.
    #[test]
    fn real_postgres_recorder_survives_a_crash_restart() {
        let pg = HostPg::start();
        pg.conn()
            .simple_query("CREATE TABLE acks(id bigint)")
            .unwrap();
        let opts = RecorderOptions {
            addr: pg.addr,
            user: "postgres".into(),
            database: "postgres".into(),
            start: 1,
            count: Some(300),
        };
        let logfile = pg.dir.path().join("client.log");
        let path = logfile.clone();
        let client = thread::spawn(move || {
            let mut f = fs::File::create(&path).unwrap();
            record_commits(&opts, &mut f).unwrap();
        });
        let read = || fs::read_to_string(&logfile).unwrap_or_default();
        let t0 = Instant::now();
        while parse_acks(&read()).len() < 50 {
            assert!(t0.elapsed() < Duration::from_secs(60), "{}", read());
            thread::sleep(Duration::from_millis(10));
        }
        pg.ctl(&["-m", "immediate", "stop"]);
        let during = parse_acks(&read()).len();
        thread::sleep(Duration::from_millis(300));
        pg.ctl(&["-w", "-t", "60", "start"]);
        client.join().unwrap();
        let log = read();
        let acks = parse_acks(&log);
        assert_eq!(acks.len(), 300, "{log}");
        assert!(during < 300, "the crash came after the run: {log}");
        assert!(
            acks.iter().map(|a| a.conn).max() >= Some(2),
            "no reconnection: {log}"
        );
        assert!(log.contains("fail "), "{log}");
        let ids = pg.ids();
        let text: String = ids.iter().map(|i| format!("{i}\n")).collect();
        assert_eq!(record::lost(&acks, &text), Vec::<u64>::new());
        // present at most once more than acked: the one in flight at the crash
        let distinct: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
        assert!(distinct.len() <= 301, "{distinct:?}");
        assert_eq!(
            acks.iter().map(|a| a.n).collect::<Vec<_>>(),
            (1..=300).collect::<Vec<_>>()
        );
    }
}
