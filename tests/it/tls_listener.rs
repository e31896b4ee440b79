//! A loopback TLS listener for axum: accepts TCP connections, completes each TLS handshake (each in its own task,
//! so one slow client holds up no other) with the test PKI's server configuration, and records the handshakes
//! that failed (a client without a certificate, one that does not trust the CA), so a test can tell a refused
//! handshake from a request never made.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use herald::clock::Clock;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub struct TlsListener {
    addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<(TlsStream<TcpStream>, SocketAddr)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    pub async fn bind(config: Arc<rustls::ServerConfig>) -> (Self, Arc<Mutex<Vec<String>>>) {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let listener = crate::emulator::loopback().await;
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(config);
        let (sender, accepted) = mpsc::unbounded_channel();
        let task = {
            let failures = Arc::clone(&failures);
            tokio::spawn(async move {
                while let Ok((stream, peer)) = listener.accept().await {
                    let (acceptor, sender, failures) =
                        (acceptor.clone(), sender.clone(), Arc::clone(&failures));
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(tls) => {
                                let _ = sender.send((tls, peer));
                            }
                            Err(error) => failures.lock().unwrap().push(error.to_string()),
                        }
                    });
                }
            })
        };
        (
            TlsListener {
                addr,
                accepted,
                task,
            },
            failures,
        )
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
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
