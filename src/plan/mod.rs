//! The plan: model, diff against live state, scoping (shards, targets), views and saved plan
//! files. Everything here is pure: saving a plan is the CLI writing the bytes `file` produced.

#![warn(missing_docs)]

pub mod content;
pub mod diff;
pub mod evidence;
pub mod file;
pub mod model;
pub mod recheck;
pub mod render;
pub mod scope;
pub mod stale;
