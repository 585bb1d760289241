//! The command line's own modules: output formatting and the demo.

pub mod demo;
pub mod output;
