//! The command line's own modules: output formatting, the demo, and the
//! import and export commands' terminal side (progress, rejects file).

pub mod demo;
pub mod import;
pub mod output;
