//! What the server's plumbing and its handlers share: the open database
//! and the server's settings, the client timeout, the write token.

use std::time::Duration;

use annals::{Annals, Error};

/// Time a client has to send a request's headers, and its body.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every request handler shares.
pub(crate) struct Shared {
    pub(crate) db: Annals,
    /// `None` when the server is read-only.
    pub(crate) token: Option<Vec<u8>>,
    pub(crate) max_body_bytes: usize,
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
    use super::same_token;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_token(b"", b"0123456789abcdef"));
    }
}
