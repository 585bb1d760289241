//! Connection slots, shed under pressure. A fixed number of slots alone
//! lets anyone who opens that many sockets (and sends nothing, or a header
//! line now and then) keep every other client waiting until the header
//! time-out culls them. So when every slot is taken, a new connection
//! takes the slot of the connection that has been idle longest (no
//! request being answered: still sending its headers, or kept alive
//! between requests), which is closed. Only when every connection is busy
//! answering does a new one wait. A live feed leaves the slots altogether
//! (feeds have their own budget, [`super::shared::Feeds`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::response::Response;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Notify;

/// The table of open connections.
pub(crate) struct Conns {
    slots: usize,
    table: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicUsize,
    freed: Arc<Notify>,
}

/// One open connection, as the table and its requests see it.
pub(crate) struct Conn {
    id: u64,
    /// The client's address: feeds are budgeted per client.
    pub(crate) peer: IpAddr,
    /// Requests being answered (a response counts until its body is sent).
    busy: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// A live feed: outside the slots, never shed.
    feed: AtomicBool,
    /// Told to close: the table gave its slot away.
    close: Notify,
    freed: Arc<Notify>,
}

impl Conn {
    /// This connection now carries a live feed: its slot is freed for
    /// ordinary requests (its response closes the connection at the end).
    pub(crate) fn become_feed(&self) {
        self.feed.store(true, Ordering::SeqCst);
        self.freed.notify_waiters();
    }

    /// Waits until the table sheds this connection.
    pub(crate) async fn shed(&self) {
        self.close.notified().await
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0 && !self.feed.load(Ordering::SeqCst)
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Conns {
    pub(crate) fn new(slots: usize) -> Conns {
        Conns {
            slots: slots.max(1),
            table: Mutex::default(),
            next: AtomicUsize::new(0),
            freed: Arc::new(Notify::new()),
        }
    }

    /// A slot for a new connection from `peer`: a free one, or the slot of
    /// the connection idle longest, or (every connection busy) the first
    /// one freed.
    pub(crate) async fn admit(&self, peer: IpAddr) -> Arc<Conn> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(conn) = self.try_admit(peer) {
                return conn;
            }
            freed.await;
        }
    }

    fn try_admit(&self, peer: IpAddr) -> Option<Arc<Conn>> {
        // The table only lists; a panic elsewhere cannot leave it half-made.
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let taken = table
            .values()
            .filter(|c| !c.feed.load(Ordering::SeqCst))
            .count();
        if taken >= self.slots {
            let victim = table
                .values()
                .filter(|c| c.is_idle())
                .min_by_key(|c| c.idle_since())
                .map(|c| c.id)?;
            if let Some(v) = table.remove(&victim) {
                v.close.notify_one();
            }
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst) as u64;
        let conn = Arc::new(Conn {
            id,
            peer,
            busy: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            feed: AtomicBool::new(false),
            close: Notify::new(),
            freed: self.freed.clone(),
        });
        table.insert(id, conn.clone());
        Some(conn)
    }

    /// The connection has ended: its slot is free.
    pub(crate) fn release(&self, conn: &Conn) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn.id);
        self.freed.notify_waiters();
    }

    /// Connections open now (feeds included).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Marks its connection busy while it lives: from a request's headers to
/// the last byte of its response.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        // Idle now, so sheddable: a connection waiting for a slot may
        // take this one's.
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.freed.notify_waiters();
        }
    }
}

/// The router as one connection's service: each request carries its
/// connection (as an extension) and keeps it busy until answered.
#[derive(Clone)]
pub(crate) struct Tracked {
    pub(crate) app: TowerToHyperService<axum::Router>,
    pub(crate) conn: Arc<Conn>,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Answer {
        let busy = Busy::new(self.conn.clone());
        req.extensions_mut().insert(self.conn.clone());
        let answer = self.app.call(req);
        Box::pin(async move {
            let resp = answer.await?;
            Ok(resp.map(|inner| Body::new(Guarded { inner, _busy: busy })))
        })
    }
}

/// A response body that keeps its connection busy until it is sent.
struct Guarded {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> IpAddr {
        [127, 0, 0, 1].into()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_table_sheds_the_connection_idle_longest() {
        let conns = Conns::new(2);
        let a = conns.admit(local()).await;
        let b = conns.admit(local()).await;
        let _busy_b = Busy::new(b.clone());
        // Both slots taken; `a` is idle, `b` answers: `a` goes.
        let c = conns.admit(local()).await;
        assert_eq!(conns.open(), 2);
        tokio::time::timeout(std::time::Duration::from_secs(1), a.shed())
            .await
            .expect("the idle connection is told to close");
        // `c` idle, `b` busy: the next one sheds `c`.
        let _d = conns.admit(local()).await;
        tokio::time::timeout(std::time::Duration::from_secs(1), c.shed())
            .await
            .expect("the idle newcomer goes next");
    }

    /// One slot, taken by a busy connection `a`, and a task waiting to
    /// be admitted.
    async fn one_busy_slot_and_a_waiter() -> (
        Arc<Conns>,
        Arc<Conn>,
        Busy,
        tokio::task::JoinHandle<Arc<Conn>>,
    ) {
        let conns = Arc::new(Conns::new(1));
        let a = conns.admit(local()).await;
        let busy = Busy::new(a.clone());
        let waiting = {
            let conns = conns.clone();
            tokio::spawn(async move { conns.admit(local()).await })
        };
        tokio::task::yield_now().await;
        (conns, a, busy, waiting)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_takes_the_slot_of_a_connection_gone_idle() {
        let (_conns, a, busy, waiting) = one_busy_slot_and_a_waiter().await;
        assert!(!waiting.is_finished());
        drop(busy);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("an idle connection's slot is given away")
            .expect("the task ran");
        tokio::time::timeout(std::time::Duration::from_secs(1), a.shed())
            .await
            .expect("and it is told to close");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn feeds_leave_the_slots_and_busy_tables_wait() {
        let (conns, a, busy, waiting) = one_busy_slot_and_a_waiter().await;
        assert!(!waiting.is_finished(), "every connection busy: wait");
        a.become_feed();
        let b = tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("a feed frees its slot")
            .expect("the task ran");
        assert_eq!(conns.open(), 2);
        drop(busy);
        conns.release(&a);
        conns.release(&b);
        assert_eq!(conns.open(), 0);
    }
}
