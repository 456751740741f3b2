//! Saved plan files: `houba plan -o FILE` writes one, `houba apply FILE` and `houba show FILE`
//! read it back.

use std::path::Path;

use super::model::{FORMAT_VERSION, Plan};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanFileError {
    #[error("cannot read plan file {path}: {source}")]
    #[diagnostic(code(houba::plan_file::read))]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write plan file {path}: {source}")]
    #[diagnostic(code(houba::plan_file::write))]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a houba plan file: {message}")]
    #[diagnostic(
        code(houba::plan_file::invalid),
        help("create one with `houba plan -o {path}`")
    )]
    Invalid { path: String, message: String },
    #[error("{path} was written in plan format {found}; this houba reads format {expected}")]
    #[diagnostic(
        code(houba::plan_file::version),
        help("run `houba plan -o {path}` again with this houba")
    )]
    Version {
        path: String,
        found: String,
        expected: String,
    },
}

pub fn save(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    let mut text = serde_json::to_string_pretty(plan).expect("a plan always serialises");
    text.push('\n');
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| PlanFileError::Write {
            path: path.display().to_string(),
            source,
        })
}

pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
        path: p.clone(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| PlanFileError::Invalid {
            path: p.clone(),
            message: e.to_string(),
        })?;
    let found = value
        .get("format_version")
        .and_then(|v| v.as_str())
        .ok_or_else(|| PlanFileError::Invalid {
            path: p.clone(),
            message: "no format_version".into(),
        })?;
    if found != FORMAT_VERSION {
        return Err(PlanFileError::Version {
            path: p,
            found: found.to_string(),
            expected: FORMAT_VERSION.to_string(),
        });
    }
    serde_json::from_value(value).map_err(|e| PlanFileError::Invalid {
        path: p,
        message: e.to_string(),
    })
}
