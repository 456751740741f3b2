//! The plan: model, diff against live state, scoping (shards, targets), rendering and saved
//! plan files. Everything here is pure but `file`, which reads and writes plan files.

pub mod content;
pub mod diff;
pub mod file;
pub mod model;
pub mod render;
pub mod scope;
pub mod stale;
