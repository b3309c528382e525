//! Free local TCP ports.

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago: the OS picks it for a
/// listener that is closed at once. Another process may take it before the
/// caller binds it; for servers that accept a listener, bind port 0 instead.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free local port: {e}"))
}
