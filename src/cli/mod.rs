//! The command line's own modules: output formatting, the demo, and the
//! import and export commands' terminal side (progress, rejects file),
//! and the HTTP server.

pub mod common;
pub mod demo;
pub mod import;
pub mod output;
#[cfg(feature = "serve")]
pub mod serve;
