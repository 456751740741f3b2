//! houba: the single front door for the external container images an organisation runs.
//!
//! Data flows one way (see `docs/architecture.md`): policies + config → resolved policies →
//! desired graph → plan → apply. Only `config` reads the environment; only `registry` and
//! `build` talk to the outside world.

pub mod build;
pub mod cli;
pub mod config;
pub mod policy;
pub mod registry;
