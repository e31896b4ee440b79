//! An SMTP server on loopback that behaves like a submission server: EHLO/HELO, STARTTLS with the test PKI (or TLS
//! from the first byte), AUTH PLAIN and LOGIN, MAIL, RCPT, DATA (with dot-unstuffing), RSET, NOOP, QUIT. It can
//! require TLS before anything is sent and sign-in before MAIL, answers the end of each DATA from a script (a 4xx
//! or 5xx reply, else 250), records every accepted mail with its envelope, and records protocol errors: commands
//! out of order, AUTH in the clear, wrong credentials, a mail without the headers a mail must have.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use herald::clock::Clock;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;

use crate::emulator;

/// The headers every mail must carry.
const REQUIRED_HEADERS: [&str; 6] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
];

/// The longest command line taken (RFC 5321: 512 octets; AUTH lines may be longer).
const MAX_LINE: usize = 4096;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the emulator is set up.
#[derive(Clone, Default)]
pub struct SmtpOptions {
    /// Offer STARTTLS with this configuration, and refuse MAIL and AUTH before it.
    pub starttls: Option<Arc<rustls::ServerConfig>>,
    /// Speak TLS from the first byte with this configuration (SMTPS).
    pub implicit_tls: Option<Arc<rustls::ServerConfig>>,
    /// Require sign-in with this username and password before MAIL.
    pub auth: Option<(String, String)>,
}

/// A reply to the end of a DATA.
#[derive(Debug, Clone)]
pub struct SmtpReply {
    pub code: u16,
    pub text: String,
}

impl SmtpReply {
    pub fn transient() -> Self {
        SmtpReply {
            code: 451,
            text: "4.3.0 Temporary failure, try again later".into(),
        }
    }

    pub fn permanent() -> Self {
        SmtpReply {
            code: 554,
            text: "5.7.1 Message rejected as spam".into(),
        }
    }
}

/// A mail the emulator accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub at: DateTime<Utc>,
    pub hello: String,
    pub from: String,
    pub to: Vec<String>,
    pub tls: bool,
    pub user: Option<String>,
    /// The message as received (CRLF line ends, dots unstuffed).
    pub data: String,
}

impl Mail {
    /// The first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(value) = found.as_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((header, value)) = line.split_once(':')
                && header.eq_ignore_ascii_case(name)
            {
                found = Some(value.trim().to_owned());
            }
        }
        found
    }

    /// The body with each quoted-printable part decoded (good enough to search for text).
    pub fn body(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body);
        let mut quoted = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("quoted-printable"));
        let mut out = String::new();
        for line in body.split("\r\n") {
            if line.starts_with("--") {
                quoted = false;
            } else if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("Content-Transfer-Encoding")
            {
                quoted = value.trim().eq_ignore_ascii_case("quoted-printable");
            }
            if !quoted {
                out.push_str(line);
                out.push_str("\r\n");
                continue;
            }
            let (line, soft) = match line.strip_suffix('=') {
                Some(line) => (line, true),
                None => (line, false),
            };
            let bytes = line.as_bytes();
            let mut decoded = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'='
                    && let Some(byte) = line
                        .get(i + 1..i + 3)
                        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    decoded.push(byte);
                    i += 3;
                    continue;
                }
                decoded.push(bytes[i]);
                i += 1;
            }
            out.push_str(&String::from_utf8_lossy(&decoded));
            if !soft {
                out.push_str("\r\n");
            }
        }
        out
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<SmtpReply>,
    mails: Vec<Mail>,
    /// The code answered to each DATA, in order.
    data_replies: Vec<u16>,
    errors: Vec<String>,
    sessions: usize,
}

type Shared = emulator::Shared<Inner>;

pub struct SmtpEmulator {
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpEmulator {
    pub async fn start(options: SmtpOptions, clock: Arc<dyn Clock>) -> Self {
        let listener = emulator::loopback().await;
        let addr = listener.local_addr().unwrap();
        let shared = Shared::new(Inner::default(), clock);
        let task = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (shared, options) = (shared.clone(), options.clone());
                    tokio::spawn(async move {
                        Session::run(Box::new(stream), shared, options).await;
                    });
                }
            })
        };
        SmtpEmulator { addr, shared, task }
    }

    /// `HOST:PORT` for `smarthost`.
    pub fn smarthost(&self) -> String {
        self.addr.to_string()
    }

    /// Answers the next DATAs with these replies, in order (then 250).
    pub fn script(&self, replies: impl IntoIterator<Item = SmtpReply>) {
        self.shared.lock().script.extend(replies);
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.shared.lock().mails.clone()
    }

    pub fn data_replies(&self) -> Vec<u16> {
        self.shared.lock().data_replies.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    pub fn sessions(&self) -> usize {
        self.shared.lock().sessions
    }

    /// Waits (up to a generous bound) until `count` DATAs were answered, accepted or not.
    pub async fn wait_for_data(&self, count: usize) {
        self.shared.wait_for_count(count, "the SMTP emulator").await;
    }
}

/// One SMTP session.
struct Session {
    shared: Shared,
    options: SmtpOptions,
    tls: bool,
    greeted: bool,
    hello: String,
    user: Option<String>,
    from: Option<String>,
    to: Vec<String>,
}

impl Session {
    async fn run(stream: Box<dyn Io>, shared: Shared, options: SmtpOptions) {
        shared.lock().sessions += 1;
        let mut session = Session {
            shared,
            options,
            tls: false,
            greeted: false,
            hello: String::new(),
            user: None,
            from: None,
            to: Vec::new(),
        };
        let stream = match session.options.implicit_tls.clone() {
            Some(config) => match TlsAcceptor::from(config).accept(stream).await {
                Ok(tls) => {
                    session.tls = true;
                    Box::new(tls) as Box<dyn Io>
                }
                Err(error) => {
                    session.error(format!("TLS handshake failed: {error}"));
                    return;
                }
            },
            None => stream,
        };
        let mut conn = BufReader::new(stream);
        if session
            .reply(&mut conn, "220 herald-test ESMTP ready")
            .await
            .is_err()
        {
            return;
        }
        loop {
            let Some(line) = read_line(&mut conn).await else {
                return;
            };
            let (verb, argument) = line
                .split_once(' ')
                .map_or((line.as_str(), ""), |(verb, rest)| (verb, rest.trim()));
            let verb = verb.to_ascii_uppercase();
            let answered = match verb.as_str() {
                "EHLO" | "HELO" => session.hello(&mut conn, &verb, argument).await,
                "STARTTLS" => match session.starttls(conn).await {
                    Some(upgraded) => {
                        conn = upgraded;
                        Ok(())
                    }
                    None => return,
                },
                "AUTH" => session.auth(&mut conn, argument).await,
                "MAIL" => session.mail(&mut conn, argument).await,
                "RCPT" => session.rcpt(&mut conn, argument).await,
                "DATA" => session.data(&mut conn).await,
                "RSET" => {
                    session.from = None;
                    session.to.clear();
                    session.reply(&mut conn, "250 2.0.0 Reset").await
                }
                "NOOP" => session.reply(&mut conn, "250 2.0.0 OK").await,
                "QUIT" => {
                    let _ = session.reply(&mut conn, "221 2.0.0 Bye").await;
                    return;
                }
                _ => {
                    session.error(format!("unknown command {verb:?}"));
                    session.reply(&mut conn, "500 5.5.2 Unknown command").await
                }
            };
            if answered.is_err() {
                return;
            }
        }
    }

    fn error(&self, error: String) {
        self.shared.lock().errors.push(error);
    }

    async fn reply(&self, conn: &mut BufReader<Box<dyn Io>>, text: &str) -> std::io::Result<()> {
        conn.get_mut()
            .write_all(format!("{text}\r\n").as_bytes())
            .await?;
        conn.get_mut().flush().await
    }

    async fn hello(
        &mut self,
        conn: &mut BufReader<Box<dyn Io>>,
        verb: &str,
        name: &str,
    ) -> std::io::Result<()> {
        if name.is_empty() {
            self.error(format!("{verb} without a name"));
            return self.reply(conn, "501 5.5.4 Name required").await;
        }
        self.greeted = true;
        self.hello = name.to_owned();
        self.from = None;
        self.to.clear();
        if verb == "HELO" {
            return self.reply(conn, "250 herald-test").await;
        }
        let mut lines = vec![format!("herald-test greets {name}"), "8BITMIME".into()];
        if self.options.starttls.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.options.auth.is_some() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("SIZE 10485760".into());
        let last = lines.len() - 1;
        let text: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("250{}{line}", if i == last { ' ' } else { '-' }))
            .collect();
        self.reply(conn, &text.join("\r\n")).await
    }

    async fn starttls(
        &mut self,
        mut conn: BufReader<Box<dyn Io>>,
    ) -> Option<BufReader<Box<dyn Io>>> {
        let Some(config) = self.options.starttls.clone().filter(|_| !self.tls) else {
            self.error("STARTTLS when not offered".into());
            self.reply(&mut conn, "502 5.5.1 Not offered").await.ok()?;
            return Some(conn);
        };
        if !self.greeted {
            self.error("STARTTLS before EHLO".into());
        }
        self.reply(&mut conn, "220 2.0.0 Ready to start TLS")
            .await
            .ok()?;
        match TlsAcceptor::from(config).accept(conn.into_inner()).await {
            Ok(tls) => {
                self.tls = true;
                // RFC 3207: the client forgets what it knew and greets again.
                self.greeted = false;
                Some(BufReader::new(Box::new(tls)))
            }
            Err(error) => {
                self.error(format!("TLS handshake failed: {error}"));
                None
            }
        }
    }

    async fn auth(
        &mut self,
        conn: &mut BufReader<Box<dyn Io>>,
        argument: &str,
    ) -> std::io::Result<()> {
        let Some((user, password)) = self.options.auth.clone() else {
            self.error("AUTH when not offered".into());
            return self.reply(conn, "502 5.5.1 Not offered").await;
        };
        if !self.greeted {
            self.error("AUTH before EHLO".into());
            return self.reply(conn, "503 5.5.1 EHLO first").await;
        }
        if self.options.starttls.is_some() && !self.tls {
            self.error("AUTH in the clear, before STARTTLS".into());
            return self.reply(conn, "538 5.7.11 Encryption required").await;
        }
        let (mechanism, initial) = argument
            .split_once(' ')
            .map_or((argument, None), |(m, rest)| {
                (m, Some(rest.trim().to_owned()))
            });
        let decode = |text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        };
        let given = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(initial) => Some(initial),
                    None => {
                        self.reply(conn, "334 ").await?;
                        read_line(conn).await
                    }
                };
                response.and_then(|r| decode(&r)).and_then(|plain| {
                    let mut parts = plain.split('\0');
                    let _authorization = parts.next()?;
                    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
                })
            }
            "LOGIN" => {
                self.reply(conn, "334 VXNlcm5hbWU6").await?;
                let name = read_line(conn).await.and_then(|r| decode(&r));
                self.reply(conn, "334 UGFzc3dvcmQ6").await?;
                let secret = read_line(conn).await.and_then(|r| decode(&r));
                name.zip(secret)
            }
            other => {
                self.error(format!("unsupported AUTH mechanism {other:?}"));
                return self.reply(conn, "504 5.5.4 Unrecognized mechanism").await;
            }
        };
        match given {
            Some((name, secret)) if name == user && secret == password => {
                self.user = Some(name);
                self.reply(conn, "235 2.7.0 Authentication successful")
                    .await
            }
            _ => {
                self.error("authentication with wrong credentials".into());
                self.reply(conn, "535 5.7.8 Authentication credentials invalid")
                    .await
            }
        }
    }

    /// Whether the session may start a mail; records why not.
    fn may_send(&self) -> Option<&'static str> {
        if !self.greeted {
            Some("503 5.5.1 EHLO first")
        } else if self.options.starttls.is_some() && !self.tls {
            Some("530 5.7.0 Must issue a STARTTLS command first")
        } else if self.options.auth.is_some() && self.user.is_none() {
            Some("530 5.7.0 Authentication required")
        } else {
            None
        }
    }

    async fn mail(
        &mut self,
        conn: &mut BufReader<Box<dyn Io>>,
        argument: &str,
    ) -> std::io::Result<()> {
        if let Some(refusal) = self.may_send() {
            self.error(format!("MAIL refused: {refusal}"));
            return self.reply(conn, refusal).await;
        }
        let Some(address) = path(argument, "FROM:") else {
            self.error(format!("malformed MAIL {argument:?}"));
            return self
                .reply(conn, "501 5.5.4 Syntax: MAIL FROM:<address>")
                .await;
        };
        self.from = Some(address);
        self.to.clear();
        self.reply(conn, "250 2.1.0 Sender OK").await
    }

    async fn rcpt(
        &mut self,
        conn: &mut BufReader<Box<dyn Io>>,
        argument: &str,
    ) -> std::io::Result<()> {
        if self.from.is_none() {
            self.error("RCPT before MAIL".into());
            return self.reply(conn, "503 5.5.1 MAIL first").await;
        }
        let Some(address) = path(argument, "TO:").filter(|a| !a.is_empty()) else {
            self.error(format!("malformed RCPT {argument:?}"));
            return self
                .reply(conn, "501 5.5.4 Syntax: RCPT TO:<address>")
                .await;
        };
        self.to.push(address);
        self.reply(conn, "250 2.1.5 Recipient OK").await
    }

    async fn data(&mut self, conn: &mut BufReader<Box<dyn Io>>) -> std::io::Result<()> {
        if self.from.is_none() || self.to.is_empty() {
            self.error("DATA without MAIL and RCPT".into());
            return self.reply(conn, "503 5.5.1 MAIL and RCPT first").await;
        }
        self.reply(conn, "354 End data with <CR><LF>.<CR><LF>")
            .await?;
        let mut data = String::new();
        loop {
            let Some(line) = read_line(conn).await else {
                self.error("connection closed during DATA".into());
                return Ok(());
            };
            if line == "." {
                break;
            }
            let line = line.strip_prefix('.').unwrap_or(&line);
            data.push_str(line);
            data.push_str("\r\n");
        }
        let mail = Mail {
            at: self.shared.now(),
            hello: self.hello.clone(),
            from: self.from.take().unwrap_or_default(),
            to: std::mem::take(&mut self.to),
            tls: self.tls,
            user: self.user.clone(),
            data,
        };
        for header in REQUIRED_HEADERS {
            if mail.header(header).is_none() {
                self.error(format!("mail without a {header} header"));
            }
        }
        let reply = self.shared.record(|inner| {
            let reply = inner.script.pop_front().unwrap_or(SmtpReply {
                code: 250,
                text: "2.0.0 Ok: queued".into(),
            });
            inner.data_replies.push(reply.code);
            if reply.code < 300 {
                inner.mails.push(mail);
            }
            reply
        });
        self.reply(conn, &format!("{} {}", reply.code, reply.text))
            .await
    }
}

/// The address of `FROM:<address> [parameters]` or `TO:<address>`.
fn path(argument: &str, prefix: &str) -> Option<String> {
    let rest = argument.get(..prefix.len())?;
    if !rest.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = argument[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// One line without its CRLF; `None` at the end of the stream or on a line too long.
async fn read_line(conn: &mut BufReader<Box<dyn Io>>) -> Option<String> {
    let mut line = Vec::new();
    let read = conn.read_until(b'\n', &mut line).await.ok()?;
    if read == 0 || line.len() > MAX_LINE {
        return None;
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}
