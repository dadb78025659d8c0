//! Limits on what a client of the local API may hold, so that a local process without the token
//! can neither read flags nor starve the holder of the token:
//!
//! - a request's headers must arrive within [`HEADER_TIMEOUT`] of their first byte (a
//!   slow-headers client holds a connection and a task); a request's body is not headers and is
//!   bounded by the server where it is read;
//! - a connection must carry an authenticated request within [`AUTH_TIMEOUT`] of its accept, or
//!   it is closed; once it has, it may idle as long as it likes (a handler's kept-alive
//!   connection idles, frozen, between invocations);
//! - when every slot is taken, a connection that never authenticated is evicted for a new one
//!   ([`Connections::admit`]).
//!
//! The HTTP parsing is hyper's: the server tells a connection's [`Tracker`] when hyper has
//! parsed a request's headers ([`Tracker::request_started`]) and when its answer is ready
//! ([`Tracker::request_done`]). (hyper's own header timeout also counts idle time, so it is off.)

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How long a request's headers may take to arrive, counted from their first byte.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a new connection has to carry a request with the right token, counted from accept.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the server knows of one connection: whether it has authenticated, whether a request is
/// being served, and a way to close it from outside.
#[derive(Debug, Default)]
pub struct Tracker {
    /// A request on it carried the right token.
    authenticated: AtomicBool,
    /// Requests whose headers hyper has parsed.
    started: AtomicU64,
    /// A request's headers are parsed and its answer is not ready yet: bytes read now are its
    /// body (or the next request, pipelined), not slow headers.
    serving: AtomicBool,
    /// Notified to close the connection (evicted for a newer one).
    evict: Notify,
}

impl Tracker {
    /// Records that hyper parsed a request's headers, and whether it carried the right token.
    pub fn request_started(&self, authenticated: bool) {
        if authenticated {
            self.authenticated.store(true, Ordering::Release);
        }
        self.serving.store(true, Ordering::Release);
        self.started.fetch_add(1, Ordering::AcqRel);
    }

    /// Records that the request's answer is ready (its body, if any, has been read or refused).
    pub fn request_done(&self) {
        self.serving.store(false, Ordering::Release);
    }

    /// Whether a request on this connection carried the right token.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    /// Completes when the connection is evicted, or when [`AUTH_TIMEOUT`] after `accepted` it
    /// has not authenticated: the caller then closes it.
    pub async fn closed(&self, accepted: Instant) {
        let evicted = self.evict.notified();
        tokio::pin!(evicted);
        tokio::select! {
            () = &mut evicted => {}
            () = async {
                tokio::time::sleep_until(accepted + AUTH_TIMEOUT).await;
                if self.is_authenticated() {
                    std::future::pending::<()>().await;
                }
            } => {}
        }
    }
}

/// The connections being served, at most `max` at once.
#[derive(Debug)]
pub struct Connections {
    slots: Arc<Semaphore>,
    /// Every live connection by accept order, for eviction.
    live: Mutex<BTreeMap<u64, Arc<Tracker>>>,
    next: AtomicU64,
}

/// A connection's place among [`Connections`]: frees its slot when dropped.
#[derive(Debug)]
pub struct Admitted {
    /// The connection's tracker, shared with its service and its stream.
    pub tracker: Arc<Tracker>,
    id: u64,
    connections: Arc<Connections>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// How long a new connection waits for an evicted one's slot.
const EVICTION_WAIT: Duration = Duration::from_millis(500);

impl Connections {
    /// Room for `max` connections at once.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(max)),
            live: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        })
    }

    /// A slot for a new connection. When all are taken, the oldest connection that has not
    /// authenticated is evicted and its slot given to this one; `None` when every connection
    /// has authenticated (the new one is then closed: token holders keep theirs).
    pub async fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let victim = {
                    let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
                    let id = live
                        .iter()
                        .find(|(_, tracker)| !tracker.is_authenticated())
                        .map(|(id, _)| *id)?;
                    // Out of the list at once: another newcomer picks another victim.
                    live.remove(&id)?
                };
                victim.evict.notify_one();
                tokio::time::timeout(EVICTION_WAIT, Arc::clone(&self.slots).acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let tracker = Arc::new(Tracker::default());
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&tracker));
        Some(Admitted {
            tracker,
            id,
            connections: Arc::clone(self),
            _slot: slot,
        })
    }
}

/// A stream that fails its reads once a request's headers take longer than the timeout, counted
/// from the request's first byte: bytes read while no request is being served start the clock,
/// and hyper parsing the headers ([`Tracker::request_started`]) stops it.
#[derive(Debug)]
pub struct HeaderDeadline<S> {
    inner: S,
    timeout: Duration,
    tracker: Arc<Tracker>,
    /// Armed at a request's first byte, with the count of requests started then.
    deadline: Option<(Pin<Box<Sleep>>, u64)>,
}

impl<S> HeaderDeadline<S> {
    /// Guards `inner` with `timeout`, told of requests by `tracker`.
    pub fn new(inner: S, timeout: Duration, tracker: Arc<Tracker>) -> Self {
        Self {
            inner,
            timeout,
            tracker,
            deadline: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeaderDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let started = self.tracker.started.load(Ordering::Acquire);
        if self
            .deadline
            .as_ref()
            .is_some_and(|(_, armed_at)| *armed_at != started)
        {
            // hyper parsed the headers the clock was running for.
            self.deadline = None;
        }
        if let Some((deadline, _)) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers took too long",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
            && self.deadline.is_none()
            && !self.tracker.serving.load(Ordering::Acquire)
        {
            let sleep = Box::pin(tokio::time::sleep_until(Instant::now() + self.timeout));
            self.deadline = Some((sleep, started));
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
    async fn slow_headers_are_cut_but_idle_time_and_bodies_are_not() {
        let (client, server) = tokio::io::duplex(1024);
        let tracker = Arc::new(Tracker::default());
        let mut guarded = HeaderDeadline::new(server, Duration::from_secs(2), tracker.clone());
        let (_reader, mut writer) = tokio::io::split(client);
        let mut buf = [0u8; 64];
        // Idle for an hour: no request started, nothing cut.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        writer
            .write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
            .await
            .expect("write");
        assert!(guarded.read(&mut buf).await.is_ok(), "headers pass");
        tracker.request_started(true);
        // The body comes slowly, after the headers: not headers, not cut here.
        tokio::time::sleep(Duration::from_secs(5)).await;
        writer.write_all(b"0123456789").await.expect("write");
        assert!(
            guarded.read(&mut buf).await.is_ok(),
            "a body is not headers"
        );
        tracker.request_done();
        // Idle again for an hour after the request: nothing cut.
        tokio::time::sleep(Duration::from_secs(3600)).await;
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

    #[tokio::test(start_paused = true)]
    async fn a_request_served_between_two_reads_stops_its_clock() {
        let (client, server) = tokio::io::duplex(1024);
        let tracker = Arc::new(Tracker::default());
        let mut guarded = HeaderDeadline::new(server, Duration::from_secs(2), tracker.clone());
        let (_reader, mut writer) = tokio::io::split(client);
        let mut buf = [0u8; 64];
        writer
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        assert!(guarded.read(&mut buf).await.is_ok());
        // Served and answered before the stream is read again.
        tracker.request_started(true);
        tracker.request_done();
        tokio::time::sleep(Duration::from_secs(10)).await;
        writer
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        assert!(
            guarded.read(&mut buf).await.is_ok(),
            "an idle kept-alive connection is not cut"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_token_is_closed_and_one_with_it_stays() {
        let anonymous = Tracker::default();
        let accepted = Instant::now();
        anonymous.request_started(false);
        anonymous.request_done();
        anonymous.closed(accepted).await;
        assert_eq!(accepted.elapsed(), AUTH_TIMEOUT);

        let holder = Arc::new(Tracker::default());
        holder.request_started(true);
        let waiting = tokio::spawn({
            let holder = Arc::clone(&holder);
            async move { holder.closed(Instant::now()).await }
        });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!waiting.is_finished(), "an authenticated connection idles");
        holder.evict.notify_one();
        waiting.await.expect("evicted");
    }

    #[tokio::test]
    async fn full_slots_evict_the_oldest_anonymous_connection_never_a_token_holder() {
        let connections = Connections::new(2);
        let holder = connections.admit().await.expect("slot");
        holder.tracker.request_started(true);
        let anonymous = connections.admit().await.expect("slot");
        // The anonymous connection's task closes it when evicted.
        let closing = tokio::spawn(async move {
            anonymous.tracker.closed(Instant::now()).await;
            drop(anonymous);
        });
        let newcomer = connections
            .admit()
            .await
            .expect("the anonymous one is evicted");
        closing.await.expect("closed");
        newcomer.tracker.request_started(true);
        assert!(
            connections.admit().await.is_none(),
            "token holders are never evicted"
        );
        drop(holder);
        assert!(
            connections.admit().await.is_some(),
            "a freed slot is reused"
        );
    }
}
