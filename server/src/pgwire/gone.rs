//! Whether a connection's client has gone away, checked while one of its statements runs,
//! as PostgreSQL does with `client_connection_check_interval`: pgwire reads the socket
//! only between statements, so a client that disconnects (or is killed) mid-query would
//! otherwise leave its query computing to the end. The watch holds a duplicate of the
//! socket's descriptor and peeks at it without consuming anything: end of stream or a
//! reset means the client is gone. Under TLS the raw socket is peeked all the same.

use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::Duration;

/// How often a running statement looks at its client.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A duplicate of one connection's socket, for peeking.
#[derive(Debug)]
pub(crate) struct ClientWatch {
    socket: TcpStream,
}

impl ClientWatch {
    /// A watch on `socket`'s client; `None` if the descriptor cannot be duplicated (then
    /// statements run as if the client stayed).
    pub(crate) fn of(socket: &tokio::net::TcpStream) -> Option<Self> {
        let fd = socket.as_fd().try_clone_to_owned().ok()?;
        let socket = TcpStream::from(fd);
        // The descriptor shares tokio's non-blocking mode; set it for certain.
        socket.set_nonblocking(true).ok()?;
        Some(Self { socket })
    }

    /// Whether the client has closed or reset the connection.
    fn gone(&self) -> bool {
        match self.socket.peek(&mut [0u8; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ),
        }
    }

    /// Completes once the client is gone.
    pub(crate) async fn wait_gone(&self) {
        loop {
            tokio::time::sleep(CHECK_INTERVAL).await;
            if self.gone() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn t10_a_closed_client_is_seen_pending_data_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let watch = ClientWatch::of(&server).unwrap();
        assert!(!watch.gone(), "an idle client is there");
        client.write_all(b"pending").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!watch.gone(), "unread data is not a departure");
        drop(client);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The unread bytes come first; the server's reader would consume them. Here the
        // peek sees them, so read them away as pgwire would.
        let mut buf = [0u8; 16];
        let n = server.try_read(&mut buf).unwrap();
        assert_eq!(n, 7);
        assert!(watch.gone(), "a closed client is gone");
        tokio::time::timeout(Duration::from_secs(3), watch.wait_gone())
            .await
            .expect("wait_gone completes for a closed client");
    }
}
