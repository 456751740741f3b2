//! houba: the single front door for the external container images an organisation runs.
//!
//! Data flows one way (see `docs/architecture.md`): policies + config → resolved policies →
//! desired graph → plan → apply. Only `config` reads the environment; only `registry`,
//! `build` and `rebuild` talk to the outside world.

#![warn(missing_docs)]

pub mod address;
pub mod apply;
pub mod build;
// clap reads doc comments as `--help` text: the flag and value-enum items are documented
// through their help, which `--help` tests check; the rest of the CLI is not yet.
#[allow(missing_docs)]
pub mod cli;
pub mod config;
pub mod evidence;
pub mod graph;
pub mod inventory;
pub mod live;
pub mod observe;
pub mod oci;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod rebuild;
pub mod registry;
pub mod report;
pub mod select;
pub mod stamp;
