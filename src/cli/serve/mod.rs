//! `annals serve`: the HTTP API over one open database, and the timeline
//! page (docs/http.md). The binary's only network code: the library knows
//! nothing of it.
//!
//! The database is opened once and shared by every request; each library
//! call runs on tokio's blocking pool, since annals' calls block on disk.
//! The accept loop is ours rather than `axum::serve` so that it can bound
//! the number of connections and time out clients that send headers
//! slowly: a slow or hostile client holds one connection slot, never the
//! server.

mod api;
mod shared;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use annals::Error;

use super::common::{CliError, Ctx};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use shared::{read_token, Shared, CLIENT_TIMEOUT};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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
    /// Connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
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
    out.flush()?;
    let shared = Arc::new(Shared {
        db,
        token,
        max_body_bytes: opts.max_body_bytes,
    });
    let app = api::router(shared.clone());
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    runtime.block_on(accept(listener, app, slots));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    // Subscription threads hold the database until they see their client
    // gone, which the runtime's shutdown has just made so.
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
/// each holding one of the bounded slots.
async fn accept(listener: TcpListener, app: axum::Router, slots: Arc<Semaphore>) {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            s = listener.accept() => match s {
                Ok((s, _)) => s,
                // Out of file descriptors and the like: back off, go on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
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
