//! Limits on what a client of the local API may hold: a connection whose request headers do not
//! arrive within [`HEADER_TIMEOUT`] of their first byte is closed (a slow-headers client holds a
//! connection and a task), while a kept-alive connection may idle as long as it likes — a
//! handler's connection idles, frozen, between invocations (hyper's own header timeout also
//! counts idle time, so it is off).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a request's headers may take to arrive, counted from their first byte.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// A stream that fails its reads once a request's headers take longer than the timeout.
/// The API serves GET only, so a request ends with its blank line (`\r\n\r\n`).
#[derive(Debug)]
pub struct HeaderDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Armed from a request's first byte until its blank line.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last bytes read, to find a blank line split across reads.
    tail: [u8; 3],
}

impl<S> HeaderDeadline<S> {
    /// Guards `inner` with `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            tail: [0; 3],
        }
    }

    /// Tracks the bytes just read: arms the deadline at a request's first byte and disarms it at
    /// the end of its headers.
    fn saw(&mut self, bytes: &[u8]) {
        const BLANK_LINE: &[u8; 4] = b"\r\n\r\n";
        if bytes.is_empty() {
            return;
        }
        if self.deadline.is_none() {
            self.deadline = Some(self.sleep());
        }
        // Where the last blank line ends in `bytes`: inside them, or begun in the tail.
        let end = bytes
            .windows(4)
            .rposition(|w| w == BLANK_LINE)
            .map(|at| at + 4)
            .or_else(|| {
                (1..=3).rev().find_map(|from_tail| {
                    let rest = 4 - from_tail;
                    (bytes.len() >= rest
                        && self.tail[3 - from_tail..] == BLANK_LINE[..from_tail]
                        && bytes[..rest] == BLANK_LINE[from_tail..])
                        .then_some(rest)
                })
            });
        if let Some(end) = end {
            // Anything after the blank line is the next pipelined request: its clock starts now.
            self.deadline = (end < bytes.len()).then(|| self.sleep());
        }
        let keep = bytes.len().min(3);
        self.tail.rotate_left(keep);
        self.tail[3 - keep..].copy_from_slice(&bytes[bytes.len() - keep..]);
    }

    fn sleep(&self) -> Pin<Box<Sleep>> {
        Box::pin(tokio::time::sleep_until(Instant::now() + self.timeout))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeaderDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers took too long",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.saw(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeaderDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn slow_headers_are_cut_but_idle_time_is_not() {
        let (client, server) = tokio::io::duplex(1024);
        let mut guarded = HeaderDeadline::new(server, Duration::from_secs(2));
        let (_reader, mut writer) = tokio::io::split(client);
        let mut buf = [0u8; 64];
        // Idle for an hour: no request started, nothing cut.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        writer
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        assert!(
            guarded.read(&mut buf).await.is_ok(),
            "a whole request passes"
        );
        // A request begun but never finished is cut at the timeout.
        writer
            .write_all(b"GET / HTTP/1.1\r\nHo")
            .await
            .expect("write");
        assert!(guarded.read(&mut buf).await.is_ok());
        let started = Instant::now();
        let cut = guarded.read(&mut buf).await.expect_err("cut");
        assert_eq!(cut.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn a_blank_line_split_across_reads_ends_the_headers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut guard = HeaderDeadline::new(tokio::io::empty(), Duration::from_secs(2));
            guard.saw(b"GET / HTTP/1.1\r\nHost: x\r\n\r");
            assert!(guard.deadline.is_some());
            guard.saw(b"\n");
            assert!(guard.deadline.is_none(), "headers complete");
            guard.saw(b"\r\n\r\nGET /next");
            assert!(
                guard.deadline.is_some(),
                "a pipelined request's clock starts"
            );
        });
    }
}
