//! The HTTPS listener: accepts TCP connections and completes each TLS handshake in its own task (bounded in number
//! and in time, so a slow or silent client holds up no other), with the server configuration in force when the
//! connection arrives (a reload that renews the certificate applies to the next connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; past it, accepting waits for one to end.
const MAX_HANDSHAKES: usize = 1024;

/// Gives the TLS server configuration in force.
pub type TlsSource = Box<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

type Handshake = Option<(TlsStream<TcpStream>, SocketAddr)>;

pub struct TlsListener {
    tcp: TcpListener,
    config: TlsSource,
    handshakes: JoinSet<Handshake>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: TlsSource) -> Self {
        TlsListener {
            tcp,
            config,
            handshakes: JoinSet::new(),
        }
    }
}

async fn handshake(acceptor: TlsAcceptor, stream: TcpStream, peer: SocketAddr) -> Handshake {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some((tls, peer)),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
            None
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                (stream, peer) = axum::serve::Listener::accept(&mut self.tcp), if room => {
                    let acceptor = TlsAcceptor::from((self.config)());
                    self.handshakes.spawn(handshake(acceptor, stream, peer));
                }
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
