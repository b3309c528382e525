//! A TCP load balancer in front of queue replicas, as a platform would run one: each new
//! connection goes to the next backend in turn that accepts it, so a replica that is down
//! is skipped and one that is back gets connections again. Connections already open to a
//! replica that dies break, as they would behind a real balancer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running balancer; dropping it stops accepting.
#[derive(Debug)]
pub struct Balancer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Balancer {
    /// Listen on a free local port and spread connections over `backends`.
    pub async fn start(backends: Vec<SocketAddr>) -> std::io::Result<Balancer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (backends, next) = (backends.clone(), next.clone());
                tokio::spawn(async move {
                    let Some(mut server) = connect_next(&backends, &next).await else {
                        return; // no backend up: the client sees its connection closed
                    };
                    let mut client = client;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Ok(Balancer { addr, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next backend in turn that accepts a connection within 500 ms.
async fn connect_next(backends: &[SocketAddr], next: &AtomicUsize) -> Option<TcpStream> {
    let start = next.fetch_add(1, Ordering::Relaxed);
    for i in 0..backends.len() {
        let addr = backends[(start + i) % backends.len()];
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
        {
            let _ = s.set_nodelay(true);
            return Some(s);
        }
    }
    None
}
