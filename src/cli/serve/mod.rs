//! `annals serve`: the HTTP API over one open database, and the timeline
//! page (docs/http.md). The binary's only network code: the library knows
//! nothing of it.
//!
//! The database is opened once and shared by every request; each library
//! call runs on tokio's blocking pool, since annals' calls block on disk.
//! The accept loop is ours rather than `axum::serve` so that it can bound
//! the number of connections, shed the idle ones under pressure
//! ([`conns`]) and time out clients that send headers slowly. Live feeds
//! have a budget of their own and hold no thread while they wait; exports
//! and `verify` are bounded too (docs/http.md, "Limits").

mod api;
mod conns;
mod shared;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use annals::Error;

use super::common::{CliError, Ctx};

use conns::{Conns, Tracked};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use shared::{read_token, Feeds, Hosts, Shared, CLIENT_TIMEOUT};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How the server runs; the flags of `annals serve`.
#[derive(clap::Args)]
pub struct Options {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// File whose first line is the bearer token that writes need.
    #[arg(long, conflicts_with = "read_only")]
    pub token_file: Option<PathBuf>,
    /// Refuse every write.
    #[arg(long)]
    pub read_only: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Connection slots. When all are taken, a new connection takes the
    /// slot of the one idle longest; it waits only if every one is busy.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Live feeds (`/subscribe`) open at once; they use no connection slot.
    #[arg(long, default_value_t = 64)]
    pub max_feeds: usize,
    /// Live feeds open at once from one client address.
    #[arg(long, default_value_t = 8)]
    pub max_feeds_per_client: usize,
    /// JSON Lines exports (`GET /events` streamed) running at once.
    #[arg(long, default_value_t = 8)]
    pub max_exports: usize,
    /// A host name requests may name in `Host` besides IP addresses and
    /// `localhost` (repeatable): others are refused, against DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
}

/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves until SIGINT or SIGTERM, then closes the database.
pub fn run(opts: Options, ctx: &Ctx, out: &mut dyn std::io::Write) -> Result<u8, CliError> {
    let token = match (&opts.token_file, opts.read_only) {
        (_, true) => None,
        (Some(path), false) => Some(read_token(path)?),
        (None, false) => {
            return Err(CliError::Usage(
                "serve needs --token-file FILE (writes need its bearer token) or --read-only"
                    .into(),
            ))
        }
    };
    let db = ctx.open()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("annals-serve")
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            path: "tokio runtime".into(),
            source: e,
        })?;
    let listener = runtime
        .block_on(TcpListener::bind(opts.listen))
        .map_err(|e| Error::BadPath {
            path: opts.listen.to_string().into(),
            reason: format!("cannot listen there: {e}"),
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Io {
        path: opts.listen.to_string().into(),
        source: e,
    })?;
    let mode = if token.is_some() {
        "writes need the bearer token"
    } else {
        "read-only"
    };
    writeln!(
        out,
        "annals: serving {} on http://{addr}/ ({mode}); Ctrl-C stops",
        db.path().display()
    )?;
    if !addr.ip().is_loopback() {
        writeln!(
            out,
            "annals: warning: {addr} is not a loopback address: anyone who can reach it \
             reads the whole database without a token"
        )?;
    }
    out.flush()?;
    let (head, _) = watch::channel(db.head().seq);
    let shared = Arc::new(Shared {
        db,
        token,
        max_body_bytes: opts.max_body_bytes,
        hosts: Hosts(opts.allow_hosts.clone()),
        feeds: Feeds::new(opts.max_feeds, opts.max_feeds_per_client),
        exports: Arc::new(Semaphore::new(opts.max_exports.max(1))),
        head,
        verify: tokio::sync::Mutex::new(None),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::Builder::new()
            .name("annals-head".into())
            .spawn(move || watch_head(&shared, &stop))
            .map_err(|e| Error::Io {
                path: "head watcher thread".into(),
                source: e,
            })?
    };
    let app = api::router(shared.clone());
    let conns = Arc::new(Conns::new(opts.max_connections));
    runtime.block_on(accept(listener, app, conns));
    stop.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    // Library calls still running on the blocking pool hold the database;
    // the runtime's shutdown has waited for them as long as it would.
    match Arc::try_unwrap(shared) {
        Ok(shared) => shared.db.close()?,
        Err(_) => writeln!(
            out,
            "annals: requests still running at exit; the database closes with the process"
        )?,
    }
    Ok(0)
}

/// Accepts connections until a shutdown signal, each in its own task and
/// each holding a slot of `conns` until it ends or is shed.
async fn accept(listener: TcpListener, app: axum::Router, conns: Arc<Conns>) {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let app = TowerToHyperService::new(app);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            s = listener.accept() => match s {
                Ok(s) => s,
                // Out of file descriptors and the like: back off, go on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn = tokio::select! {
            _ = &mut shutdown => return,
            c = conns.admit(peer.ip()) => c,
        };
        let _ = stream.set_nodelay(true);
        let service = Tracked {
            app: app.clone(),
            conn: conn.clone(),
        };
        let conns = conns.clone();
        tokio::spawn(async move {
            let serve = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT)
                // Over hyper's own limits a client gets a bare status;
                // under them, the JSON error of `api::limits`.
                .max_headers(api::MAX_HEADERS * 2)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = serve => {}
                _ = conn.shed() => {}
            }
            conns.release(&conn);
        });
    }
}

/// Moves `shared.head` on as main's batches commit, until told to stop:
/// the one thread that waits on the library for every live feed.
fn watch_head(shared: &Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let from = *shared.head.borrow();
        let mut feed = match shared.db.subscribe(from) {
            Ok(f) => f,
            Err(_) => {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        while !stop.load(Ordering::SeqCst) {
            match feed.next_timeout(Duration::from_millis(250)) {
                None => {}
                Some(Ok(entry)) => {
                    shared.head.send_replace(entry.seq);
                }
                // Feeds read the log themselves and report what they
                // meet; here, start over after a pause.
                Some(Err(_)) => {
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
