//! What the server's plumbing and its handlers share: the open database
//! and the server's settings, the client timeout, the write token, and
//! the budgets that keep one kind of client from starving the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use annals::{Annals, Error};
use serde_json::Value;
use tokio::sync::{watch, Semaphore};

/// Time a client has to send a request's headers, and its body.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a streamed response waits for a client to take more before it
/// gives up on it: a reader that stops reading must not hold its stream,
/// and what the stream holds, for ever.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What every request handler shares.
pub(crate) struct Shared {
    pub(crate) db: Annals,
    /// `None` when the server is read-only.
    pub(crate) token: Option<Vec<u8>>,
    pub(crate) max_body_bytes: usize,
    /// Host names (besides IP literals and `localhost`) a request may name.
    pub(crate) hosts: Hosts,
    /// Live feeds open at once, in all and per client address.
    pub(crate) feeds: Feeds,
    /// JSON Lines exports running at once: each holds a blocking thread.
    pub(crate) exports: Arc<Semaphore>,
    /// Main's head seq, moved on as batches commit: live feeds wait on it
    /// rather than each holding a thread that waits on the library.
    pub(crate) head: watch::Sender<u64>,
    /// The last `verify` and when it ran: one runs at a time, and the
    /// writer lock it holds is held for at most a fifth of the time.
    pub(crate) verify: tokio::sync::Mutex<Option<Checked>>,
}

/// A finished `verify`: at which head, its answer, how long it took.
pub(crate) struct Checked {
    pub(crate) head: u64,
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) took: Duration,
    pub(crate) ended: Instant,
}

/// The `Host` names a request may use. DNS rebinding needs a name an
/// attacker controls that resolves to this server: IP literals and
/// `localhost` cannot be such a name, so they always pass, and any other
/// name must be on the allow-list (`--allow-host`).
pub(crate) struct Hosts(pub(crate) Vec<String>);

impl Hosts {
    /// Whether `host` (a `Host` header, or an `Origin`'s authority) names
    /// this server.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let host = host.trim();
        if let Some(rest) = host.strip_prefix('[') {
            // An IPv6 literal, with or without a port.
            let inner = rest.split(']').next().unwrap_or("");
            return inner.parse::<std::net::Ipv6Addr>().is_ok();
        }
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        name.parse::<std::net::Ipv4Addr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.0.iter().any(|h| h.eq_ignore_ascii_case(&name))
    }
}

/// The live-feed budget: a cap in all and a cap per client address, so
/// that one client cannot take every feed.
pub(crate) struct Feeds {
    pub(crate) max: usize,
    pub(crate) per_client: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open feed; gives its place back when dropped.
pub(crate) struct FeedPermit {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl Feeds {
    pub(crate) fn new(max: usize, per_client: usize) -> Feeds {
        Feeds {
            max,
            per_client,
            open: Arc::default(),
        }
    }

    /// A place for a feed from `peer`, or `None` when a cap is reached.
    pub(crate) fn admit(&self, peer: IpAddr) -> Option<FeedPermit> {
        // The map only counts; a panic elsewhere cannot leave it half-made.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let mine = open.get(&peer).copied().unwrap_or(0);
        if total >= self.max || mine >= self.per_client {
            return None;
        }
        open.insert(peer, mine + 1);
        Some(FeedPermit {
            open: self.open.clone(),
            peer,
        })
    }
}

impl Drop for FeedPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// The token is the file's first line; an empty one would let anyone write.
pub(crate) fn read_token(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.into(),
        source: e,
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < 16 {
        return Err(Error::BadPath {
            path: path.into(),
            reason: "the token file's first line must hold a token of at least 16 characters"
                .into(),
        });
    }
    Ok(token.as_bytes().to_vec())
}

/// Compares in time that depends on the lengths only, so that timing
/// does not tell a client how much of a guess was right.
pub(crate) fn same_token(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_token(b"", b"0123456789abcdef"));
    }

    #[test]
    fn hosts_pass_literals_and_the_allow_list_only() {
        let hosts = Hosts(vec!["annals.example".into()]);
        for ok in [
            "127.0.0.1:7070",
            "127.0.0.1",
            "[::1]:7070",
            "[::1]",
            "localhost:7070",
            "LOCALHOST.",
            "app.localhost:1",
            "10.0.0.5:80",
            "annals.example:7070",
            "Annals.Example",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example:7070",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[not-an-ip]:1",
            "annals.example.evil",
            ":7070",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
    }

    #[test]
    fn feeds_cap_in_all_and_per_client() {
        let feeds = Feeds::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = feeds.admit(a).unwrap();
        let _a2 = feeds.admit(a).unwrap();
        assert!(feeds.admit(a).is_none(), "per client");
        let _b1 = feeds.admit(b).unwrap();
        assert!(feeds.admit(b).is_none(), "in all");
        drop(a1);
        assert!(
            feeds.admit(b).is_some(),
            "a closed feed gives its place back"
        );
    }
}
