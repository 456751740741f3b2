//! The plan: model, diff against live state, rendering and saved plan files.

pub mod diff;
pub mod model;
pub mod render;
