//! The simulator's listening socket, with room for every connection a benchmark opens at once.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// How many connections may wait to be accepted. A consumer at window 1,024 with five vendors opens
/// about 5,000 connections to the simulator within a few milliseconds (1,280 at window 256); tokio's
/// `TcpListener::bind` asks for 128, as the standard library does, and a handshake beyond the queue
/// is dropped and retried by the client a second later, which shows in the benchmark as a vendor a
/// second slow. The kernel caps this at `net.core.somaxconn` (4,096 by default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 8192;

/// Binds `address` for the simulator, with a listen queue of [`LISTEN_BACKLOG`].
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::Duration;

    use super::*;

    /// Far more than tokio's backlog of 128, fewer than `somaxconn`'s default of 4,096.
    const WAITING: usize = 2_000;

    #[tokio::test]
    async fn connections_beyond_tokios_default_backlog_are_queued_not_dropped() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        // Nothing accepts: every connection must wait in the listen queue. A dropped handshake is
        // retried only after a second, so a queue too short shows as a connect that times out.
        let connected = tokio::task::spawn_blocking(move || {
            let mut open = Vec::with_capacity(WAITING);
            for index in 0..WAITING {
                match TcpStream::connect_timeout(&address, Duration::from_millis(900)) {
                    Ok(stream) => open.push(stream),
                    Err(error) => return Err(format!("connection {index}: {error}")),
                }
            }
            Ok(open.len())
        })
        .await
        .unwrap();
        drop(listener);
        assert_eq!(connected, Ok(WAITING));
    }
}
