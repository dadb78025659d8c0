//! A slow link: a TCP relay that passes requests through at once and answers back a chunk at a
//! time with a pause between chunks, so a response's head arrives promptly and its body takes
//! as long as the test needs — a large transfer on a busy machine, made deterministic.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A relay on `127.0.0.1:port` to an upstream port.
pub struct SlowLink {
    /// Its port.
    pub port: u16,
}

impl SlowLink {
    /// Starts relaying to `upstream`: requests pass at once, answers `chunk` bytes at a time
    /// with `pause` after each chunk.
    pub async fn start(upstream: u16, chunk: usize, pause: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind slow link");
        let port = listener.local_addr().expect("slow link addr").port();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, chunk, pause));
            }
        });
        Self { port }
    }
}

async fn relay(client: TcpStream, upstream: u16, chunk: usize, pause: Duration) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut client_reads, mut client_writes) = client.into_split();
    let (mut server_reads, mut server_writes) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_reads, &mut server_writes).await;
    });
    let mut buffer = vec![0; chunk];
    while let Ok(n) = server_reads.read(&mut buffer).await {
        if n == 0 || client_writes.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
}
