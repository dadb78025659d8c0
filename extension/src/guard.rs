//! Limits on what a client of the local API may hold, so that a local process without the token
//! can neither read flags nor starve the holder of the token:
//!
//! - a request's headers must arrive within [`HEADER_TIMEOUT`] of their first byte (a
//!   slow-headers client holds a connection and a task); a request's body is not headers and is
//!   bounded by the server where it is read;
//! - a connection must carry an authenticated request within [`AUTH_TIMEOUT`] of its accept, or
//!   it is closed; once it has, it may idle (a handler's kept-alive connection idles, frozen,
//!   between invocations);
//! - when every slot is taken, a connection makes room for a new one ([`Connections::admit`]):
//!   one that never authenticated — first one that has not sent a byte, then one not being
//!   served, then any — and only when every slot is authenticated, the one idle the longest
//!   (never one being served).
//!
//! The HTTP parsing is hyper's: the server tells a connection's [`Tracker`] when hyper has
//! parsed a request's headers ([`Tracker::request_started`]) and when its answer is ready
//! ([`Tracker::request_done`]). (hyper's own header timeout also counts idle time, so it is off.)

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
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

/// A connection that has not carried an authenticated request.
const ANONYMOUS: u8 = 0;
/// A connection that has carried an authenticated request.
const AUTHENTICATED: u8 = 1;
/// A connection chosen to make room: it is being closed.
const EVICTED: u8 = 2;

/// What the server knows of one connection: whether it has authenticated, whether a request is
/// being served, since when it idles, and a way to close it from outside.
#[derive(Debug)]
pub struct Tracker {
    /// [`ANONYMOUS`], [`AUTHENTICATED`] or [`EVICTED`]: moved by compare-and-swap only, so a
    /// connection that authenticates as it is chosen for eviction is one or the other, never
    /// both.
    state: AtomicU8,
    /// Requests whose headers hyper has parsed.
    started: AtomicU64,
    /// A request's headers are parsed and its answer is not ready yet: bytes read now are its
    /// body (or the next request, pipelined), not slow headers.
    serving: AtomicBool,
    /// Bytes other than line breaks have arrived on it (a connect flood sends none).
    heard: AtomicBool,
    /// When its last answer was ready (ms since its [`Connections`]' start): the longest idle
    /// authenticated connection makes room when no anonymous one can.
    idle_since_ms: AtomicU64,
    /// Notified to close the connection (evicted for a newer one).
    evict: Notify,
    /// The clock `idle_since_ms` counts from.
    epoch: Instant,
}

impl Tracker {
    fn new(epoch: Instant) -> Self {
        Self {
            state: AtomicU8::new(ANONYMOUS),
            started: AtomicU64::new(0),
            serving: AtomicBool::new(false),
            heard: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(millis_since(epoch)),
            evict: Notify::new(),
            epoch,
        }
    }

    /// Records that hyper parsed a request's headers, and whether it carried the right token.
    pub fn request_started(&self, authenticated: bool) {
        if authenticated {
            // Fails only if the connection was evicted meanwhile: it is being closed anyway.
            let _ = self.state.compare_exchange(
                ANONYMOUS,
                AUTHENTICATED,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        self.serving.store(true, Ordering::Release);
        self.started.fetch_add(1, Ordering::AcqRel);
    }

    /// Records that the request's answer is ready (its body, if any, has been read or refused).
    pub fn request_done(&self) {
        self.idle_since_ms
            .store(millis_since(self.epoch), Ordering::Release);
        self.serving.store(false, Ordering::Release);
    }

    /// Whether a request on this connection carried the right token.
    pub fn is_authenticated(&self) -> bool {
        self.state.load(Ordering::Acquire) == AUTHENTICATED
    }

    /// Chooses this connection to make room, if it is still in `from`: the caller then closes it.
    fn evict_if(&self, from: u8) -> bool {
        let chosen = self
            .state
            .compare_exchange(from, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if chosen {
            self.evict.notify_one();
        }
        chosen
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

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The connections being served, at most `max` at once.
#[derive(Debug)]
pub struct Connections {
    slots: Arc<Semaphore>,
    /// Every live connection by accept order, for eviction.
    live: Mutex<BTreeMap<u64, Arc<Tracker>>>,
    next: AtomicU64,
    epoch: Instant,
}

/// A connection's place among [`Connections`]: frees its slot when dropped.
#[derive(Debug)]
pub struct Admitted {
    /// The connection's tracker, shared with its service and its stream.
    pub tracker: Arc<Tracker>,
    id: u64,
    connections: Arc<Connections>,
    /// Its slot: held, or to be taken over from the connection evicted for it.
    slot: Option<OwnedSemaphorePermit>,
}

impl Admitted {
    /// Waits for the slot of the connection evicted to make room for this one (at once when it
    /// had a free one); `false` if it was not freed in time, or this one was evicted meanwhile.
    /// Called by the connection's own task: the accept loop never waits.
    pub async fn ready(&mut self) -> bool {
        if self.slot.is_some() {
            return true;
        }
        let slots = Arc::clone(&self.connections.slots);
        tokio::select! {
            acquired = tokio::time::timeout(EVICTION_WAIT, slots.acquire_owned()) => match acquired {
                Ok(Ok(slot)) => {
                    self.slot = Some(slot);
                    true
                }
                _ => false,
            },
            () = self.tracker.evict.notified() => false,
        }
    }
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
            epoch: Instant::now(),
        })
    }

    /// A place for a new connection, at once (the accept loop never waits). When every slot is
    /// taken, one connection is evicted to make room — the oldest that never authenticated,
    /// else the authenticated one idle the longest (not one being served) — and the new one
    /// takes over its slot ([`Admitted::ready`]); `None` when every connection is busy serving.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                self.evict_one()?;
                None
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let tracker = Arc::new(Tracker::new(self.epoch));
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&tracker));
        Some(Admitted {
            tracker,
            id,
            connections: Arc::clone(self),
            slot,
        })
    }

    /// Evicts one connection to make room (see [`Connections::admit`]). Among those that never
    /// authenticated, the oldest that has not sent a byte goes first (what a connect flood
    /// leaves), then one already answered (a refused request), then any: a token holder's fresh
    /// connection, its first request on the way, is the last anonymous one to go.
    fn evict_one(&self) -> Option<()> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let silent = |t: &Tracker| !t.heard.load(Ordering::Acquire);
        let answered = |t: &Tracker| {
            t.started.load(Ordering::Acquire) > 0 && !t.serving.load(Ordering::Acquire)
        };
        let passes: [&dyn Fn(&Tracker) -> bool; 3] = [&silent, &answered, &|_| true];
        let anonymous = passes.iter().find_map(|pass| {
            live.iter()
                .find(|(_, tracker)| pass(tracker) && tracker.evict_if(ANONYMOUS))
                .map(|(id, _)| *id)
        });
        let id = anonymous.or_else(|| {
            let mut idle: Vec<(u64, u64)> = live
                .iter()
                .filter(|(_, t)| t.is_authenticated() && !t.serving.load(Ordering::Acquire))
                .map(|(id, t)| (t.idle_since_ms.load(Ordering::Acquire), *id))
                .collect();
            idle.sort_unstable();
            idle.into_iter()
                .map(|(_, id)| id)
                .find(|id| live.get(id).is_some_and(|t| t.evict_if(AUTHENTICATED)))
        })?;
        // Out of the list at once: another newcomer picks another victim.
        live.remove(&id).map(|_| ())
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
        // Line breaks alone between requests start no clock: RFC 9112 §2.2 has servers ignore
        // empty lines before a request, and some clients send one after a POST's body.
        let heard = matches!(polled, Poll::Ready(Ok(())))
            && buf.filled()[before..]
                .iter()
                .any(|b| !matches!(b, b'\r' | b'\n'));
        if heard {
            self.tracker.heard.store(true, Ordering::Release);
        }
        if heard && self.deadline.is_none() && !self.tracker.serving.load(Ordering::Acquire) {
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
        let tracker = Arc::new(Tracker::new(Instant::now()));
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
        let tracker = Arc::new(Tracker::new(Instant::now()));
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
        let anonymous = Tracker::new(Instant::now());
        let accepted = Instant::now();
        anonymous.request_started(false);
        anonymous.request_done();
        anonymous.closed(accepted).await;
        assert_eq!(accepted.elapsed(), AUTH_TIMEOUT);

        let holder = Arc::new(Tracker::new(Instant::now()));
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

    /// Runs `admitted` as the server's connection task would: closed when evicted.
    fn run(mut admitted: Admitted) -> tokio::task::JoinHandle<bool> {
        tokio::spawn(async move {
            if !admitted.ready().await {
                return false;
            }
            admitted.tracker.closed(Instant::now()).await;
            true
        })
    }

    #[tokio::test]
    async fn full_slots_evict_an_anonymous_connection_first_then_the_longest_idle_holder() {
        let connections = Connections::new(3);
        let first_holder = connections.admit().expect("slot");
        first_holder.tracker.request_started(true);
        first_holder.tracker.request_done();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second_holder = connections.admit().expect("slot");
        second_holder.tracker.request_started(true);
        second_holder.tracker.request_done();
        let anonymous = run(connections.admit().expect("slot"));
        // Full: the anonymous connection makes room, never a holder; the accept loop did not wait.
        let newcomer = connections.admit().expect("room is made");
        assert!(
            anonymous.await.expect("closed"),
            "the anonymous one was evicted"
        );
        let mut newcomer = newcomer;
        assert!(newcomer.ready().await, "its slot is taken over");
        newcomer.tracker.request_started(true);
        // Only holders left, one of them being served: the longest idle one makes room.
        let (first, second) = (run(first_holder), second_holder);
        second.tracker.request_started(true);
        let mut latest = connections.admit().expect("room is made");
        assert!(
            first.await.expect("closed"),
            "the longest idle holder was evicted"
        );
        assert!(latest.ready().await);
        assert!(
            second.tracker.is_authenticated(),
            "the one being served stays"
        );
        // Every connection busy serving a request: no room.
        latest.tracker.request_started(true);
        assert!(connections.admit().is_none());
        drop(latest);
        assert!(connections.admit().is_some(), "a freed slot is reused");
    }

    #[tokio::test]
    async fn a_connect_flood_evicts_silent_connections_before_a_request_on_its_way() {
        let connections = Connections::new(2);
        // A token holder's fresh connection: its request's bytes have arrived, not yet parsed.
        let holder = connections.admit().expect("slot");
        holder.tracker.heard.store(true, Ordering::Release);
        let mut flood = vec![connections.admit().expect("slot")];
        // Connects that never send a byte, one after another: each makes room by evicting the
        // oldest silent one, never the connection whose request is on its way.
        for _ in 0..5 {
            flood.push(connections.admit().expect("room is made"));
            assert_eq!(holder.tracker.state.load(Ordering::Acquire), ANONYMOUS);
        }
        assert_eq!(
            flood
                .iter()
                .filter(|c| c.tracker.state.load(Ordering::Acquire) == EVICTED)
                .count(),
            5,
            "every connect but the last evicted one silent connection"
        );
    }

    #[tokio::test]
    async fn a_connection_that_authenticates_as_it_is_chosen_is_one_or_the_other() {
        let connections = Connections::new(1);
        let only = connections.admit().expect("slot");
        // Chosen first: its late authentication does not undo the eviction.
        let _newcomer = connections.admit().expect("room is made");
        only.tracker.request_started(true);
        assert!(!only.tracker.is_authenticated());
        // Authenticated first: it is not taken for an anonymous one.
        let connections = Connections::new(1);
        let holder = connections.admit().expect("slot");
        holder.tracker.request_started(true);
        assert!(connections.admit().is_none(), "it is being served");
        holder.tracker.request_done();
        assert!(connections.admit().is_some(), "idle: it makes room");
        assert!(!holder.tracker.is_authenticated());
    }

    #[tokio::test(start_paused = true)]
    async fn line_breaks_between_requests_start_no_clock() {
        let (client, server) = tokio::io::duplex(1024);
        let tracker = Arc::new(Tracker::new(Instant::now()));
        let mut guarded = HeaderDeadline::new(server, Duration::from_secs(2), tracker.clone());
        let (_reader, mut writer) = tokio::io::split(client);
        let mut buf = [0u8; 64];
        writer.write_all(b"\r\n").await.expect("write");
        assert!(guarded.read(&mut buf).await.is_ok());
        tokio::time::sleep(Duration::from_secs(60)).await;
        writer
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        assert!(guarded.read(&mut buf).await.is_ok(), "not cut");
    }
}
