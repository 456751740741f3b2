//! The policy language: model, loading, validation and defaults merge.
//!
//! `load_policies` reads every policy file, checks each document against the schema and the
//! rules of the language, merges defaults into imports and checks what no single document can
//! see (duplicate names, repositories claimed twice). It never stops at the first problem:
//! the outcome carries every valid policy and every diagnostic of the run.

mod check;
pub mod diagnostic;
mod load;
mod locate;
pub mod merge;
pub mod model;
pub mod node;
pub mod resolved;
mod rules;
mod structure;
mod suggest;

pub use diagnostic::{Code, PolicyDiagnostic};
pub use load::{LoadOutcome, load_policies, load_policy_source};
