//! The one error type of annals.

use std::path::PathBuf;

/// Everything that can go wrong in annals.
///
/// Messages say what was wrong and where (line, field, event id, seq, path),
/// so that they can be shown to a user as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that breaks a rule of the data model. Nothing was written.
    #[error("{}invalid `{field}`: {reason}", at_prefix(.at))]
    Invalid {
        /// Where the input came from, e.g. `events.jsonl line 3`; may be empty.
        at: String,
        /// The offending field, e.g. `actors[1].role`; `-` for the whole line.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An id exists with different content, or a write contradicts the log
    /// (correcting a retracted event, creating a branch that exists, ...).
    #[error("{}conflict: {reason}", at_prefix(.at))]
    Conflict {
        /// Where the input came from; may be empty.
        at: String,
        /// What conflicts with what.
        reason: String,
    },
    /// An event (or other named thing) does not exist.
    #[error("{}not found: {what}", at_prefix(.at))]
    NotFound {
        /// Where the reference came from; may be empty.
        at: String,
        /// What was looked for.
        what: String,
    },
    /// `expect_seq` did not match the head of the log.
    #[error("head moved: expected seq {expected}, the log is at seq {actual}")]
    SeqMismatch {
        /// The seq the caller expected the head to be at.
        expected: u64,
        /// The actual head.
        actual: u64,
    },
    /// Stored bytes fail a check: a checksum, the hash chain, a decoder.
    #[error("corruption at seq {seq}: {reason}")]
    Corruption {
        /// The first damaged seq (0 when the damage is not in the log itself).
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file derived from the log (an index segment, a view file) is
    /// missing or fails a check. The log itself is not concerned:
    /// [`crate::Annals::rebuild`] (`annals rebuild`) rebuilds the file from
    /// it, and so does opening when the damage is met while catching up.
    #[error("{}: {reason} (derived from the log; `annals rebuild` rebuilds it)", .file.display())]
    DerivedDamage {
        /// The damaged file (or `index` when damage in the index as a
        /// whole is found without knowing which file).
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the database.
    #[error("database {} is in use by another process; close it there first", .path.display())]
    InUse {
        /// The database folder.
        path: PathBuf,
    },
    /// The path cannot be a database: it is a file, or does not exist.
    #[error("{}: {reason}", .path.display())]
    BadPath {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// An operating system I/O error, with the path it concerns.
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        /// The file or folder being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An export could not be written (the output file, or the encoder).
    #[error("export failed: {0}")]
    Export(String),
    /// Publishing to a Delta table failed (the table's files or its log).
    /// The table is left at its last whole commit; publishing again
    /// continues from there.
    #[error("Delta table {}: {reason}", .table.display())]
    Delta {
        /// The table's folder.
        table: PathBuf,
        /// What failed.
        reason: String,
    },
    /// An invariant of annals itself broke: a bug, not the caller's input
    /// nor the machine. Nothing was written by the failing call; please
    /// report it with the message.
    #[error("internal error (a bug in annals; please report it): {0}")]
    Internal(String),
    /// An excision interrupted earlier cannot be finished, so the
    /// database does not open. Fix the cause (free space, say) and open
    /// again, or give the excision up with [`crate::Annals::abandon_excision`]
    /// (`annals excise --abandon`), which returns the database to its state
    /// before the excision.
    #[error(
        "an interrupted excision of event {id} cannot be finished: {source}; fix the cause \
             and open again, or give it up with `annals excise --abandon` (the database returns \
             to its state before the excision)"
    )]
    ExcisionStuck {
        /// The event being excised.
        id: uuid::Uuid,
        /// Why it cannot finish.
        #[source]
        source: Box<Error>,
    },
    /// A previous write failed half-way through its flush; the in-memory
    /// state may be ahead of the disk, so writes are refused until reopen.
    #[error("a previous write failed ({0}); reopen the database before writing again")]
    Poisoned(String),
}

fn at_prefix(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("{at}: ")
    }
}

impl Error {
    /// An [`Error::Invalid`] with no location yet.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            at: String::new(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Corruption`].
    pub(crate) fn corruption(seq: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            seq,
            reason: reason.into(),
        }
    }

    /// An [`Error::DerivedDamage`].
    pub(crate) fn derived(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::DerivedDamage {
            file: file.into(),
            reason: reason.into(),
        }
    }

    /// Whether the error reports damage, in the log or in a derived file
    /// (`verify` and `prove` report both as a finding, not a failure).
    pub fn is_damage(&self) -> bool {
        matches!(self, Error::Corruption { .. } | Error::DerivedDamage { .. })
    }

    /// The error for an event id that names no event.
    pub fn no_event(id: uuid::Uuid) -> Self {
        Error::NotFound {
            at: String::new(),
            what: format!("no event with id {id}"),
        }
    }

    /// What `verify` reports on damage (the CLI prints it, `GET /verify`
    /// returns it): `{ok: false, seq, error}`, `seq` the first damaged one
    /// (0 when not in the log), and `file` for a derived file.
    pub fn damage_json(&self) -> serde_json::Value {
        match self {
            Error::Corruption { seq, reason } => {
                serde_json::json!({"ok": false, "seq": seq, "error": reason})
            }
            Error::DerivedDamage { file, .. } => serde_json::json!({"ok": false, "seq": 0,
                "file": file.display().to_string(), "error": self.to_string()}),
            other => serde_json::json!({"ok": false, "seq": 0, "error": other.to_string()}),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Re-labels an input error raised by a shared parser with the field
    /// the caller was parsing.
    pub(crate) fn for_field(self, field: &str) -> Self {
        match self {
            Error::Invalid { at, reason, .. } => Error::Invalid {
                at,
                field: field.to_string(),
                reason,
            },
            other => other,
        }
    }

    /// Sets the location (`at`) of an input error if it has none yet.
    pub fn at(mut self, location: impl Into<String>) -> Self {
        match &mut self {
            Error::Invalid { at, .. } | Error::Conflict { at, .. } | Error::NotFound { at, .. }
                if at.is_empty() =>
            {
                *at = location.into();
            }
            _ => {}
        }
        self
    }

    /// The error's kind as a stable name: what the command line, the HTTP
    /// API (`kind` in an error's JSON) and the Python package call it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::Conflict { .. } => "conflict",
            Error::NotFound { .. } => "not_found",
            Error::SeqMismatch { .. } => "seq_mismatch",
            Error::Corruption { .. } => "corruption",
            Error::DerivedDamage { .. } => "derived_damage",
            Error::InUse { .. } => "in_use",
            Error::BadPath { .. } => "bad_path",
            Error::Io { .. } => "io",
            Error::Export(_) => "export",
            Error::Delta { .. } => "delta",
            Error::ExcisionStuck { .. } => "excision_stuck",
            Error::Poisoned(_) => "poisoned",
            Error::Internal(_) => "internal",
        }
    }

    /// An [`Error::Internal`].
    pub(crate) fn internal(what: impl Into<String>) -> Self {
        Error::Internal(what.into())
    }

    /// Whether the error is the caller's input (as opposed to the database
    /// or the machine). The CLI maps these to exit code 1 as well, but
    /// embedding programs may want to tell them apart.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::Invalid { .. }
                | Error::Conflict { .. }
                | Error::NotFound { .. }
                | Error::SeqMismatch { .. }
        )
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { at, .. } => {
                Error::corruption(0, format!("storage engine reports damage at {at:?}"))
            }
            sled::Error::Io(source) => Error::Io {
                path: PathBuf::from("store"),
                source,
            },
            sled::Error::CollectionNotFound(name) => Error::corruption(
                0,
                format!("the store has no tree `{}`", String::from_utf8_lossy(&name)),
            ),
            other => Error::Internal(format!("storage engine: {other}")),
        }
    }
}

/// The result type of annals.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place() {
        let e = Error::invalid("countries[0]", "`ZZ` is not an ISO 3166-1 alpha-2 code")
            .at("events.jsonl line 3");
        assert_eq!(
            e.to_string(),
            "events.jsonl line 3: invalid `countries[0]`: `ZZ` is not an ISO 3166-1 alpha-2 code"
        );
        // A location is set once: the innermost wins.
        let e = e.at("outer");
        assert!(e.to_string().starts_with("events.jsonl line 3"));
    }
}
