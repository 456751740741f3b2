//! The policy language: model, loading, validation and defaults merge.

pub mod resolved;
