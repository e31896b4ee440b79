//! A loopback TLS listener for axum: accepts TCP connections, completes each TLS handshake with the test PKI's
//! server configuration, and records the handshakes that failed (a client without a certificate, one that does
//! not trust the CA), so a test can tell a refused handshake from a request never made.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use herald::clock::Clock;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    failures: Arc<Mutex<Vec<String>>>,
}

impl TlsListener {
    pub async fn bind(config: Arc<rustls::ServerConfig>) -> (Self, Arc<Mutex<Vec<String>>>) {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let listener = TlsListener {
            listener: crate::emulator::loopback().await,
            acceptor: TlsAcceptor::from(config),
            failures: Arc::clone(&failures),
        };
        (listener, failures)
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.listener.accept().await else {
                continue;
            };
            match self.acceptor.accept(stream).await {
                Ok(tls) => return (tls, addr),
                Err(error) => self.failures.lock().unwrap().push(error.to_string()),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A scripted receiver (see `receiver`) speaking TLS with `config`; returns it and the handshakes that failed.
pub async fn scripted_receiver(
    clock: Arc<dyn Clock>,
    config: Arc<rustls::ServerConfig>,
) -> (crate::receiver::ScriptedReceiver, Arc<Mutex<Vec<String>>>) {
    let (listener, failures) = TlsListener::bind(config).await;
    (
        crate::receiver::ScriptedReceiver::serve_on(listener, "https", clock),
        failures,
    )
}
