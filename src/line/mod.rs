//! The histories a database holds: main and its branches.

pub(crate) mod branch;
pub(crate) mod main;

use std::sync::Arc;

use crate::error::Result;
use crate::log::{Head, Log};
use branch::{Branch, Branches};
use main::Main;

/// Main and the branches, as readers see them.
#[derive(Clone, Copy)]
pub(crate) struct Lines<'a> {
    /// Main.
    pub(crate) main: &'a Main,
    /// The open branches.
    pub(crate) branches: &'a Branches,
}

impl Lines<'_> {
    /// An open branch by name.
    pub(crate) fn branch(&self, name: &str) -> Result<Arc<Branch>> {
        self.branches.get(name)
    }
}

/// One history: main or a branch.
#[derive(Clone)]
pub(crate) enum Line {
    /// Main.
    Main,
    /// A branch.
    Branch(Arc<Branch>),
}

impl Line {
    /// The line's log.
    pub(crate) fn log(&self, lines: Lines<'_>) -> Arc<Log> {
        match self {
            Line::Main => Arc::clone(lines.main.log()),
            Line::Branch(b) => Arc::clone(&b.log),
        }
    }

    /// The line's head.
    pub(crate) fn head(&self, lines: Lines<'_>) -> Head {
        match self {
            Line::Main => lines.main.head(),
            Line::Branch(b) => b.head(),
        }
    }
}
