//! Saved plan files: `houba plan -o FILE` writes one, `houba apply FILE` and `houba show FILE`
//! read it back. This module turns a plan into bytes and bytes into a plan; the CLI does the
//! file I/O.

use super::model::Plan;

/// Version of the saved-plan format. Bumped on any incompatible change.
pub const FILE_FORMAT_VERSION: &str = "1.0";

/// A plan file that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanFileError {
    /// Not a plan file at all.
    #[error("{path} is not a houba plan file: {message}")]
    #[diagnostic(
        code(houba::plan_file::invalid),
        help("create one with `houba plan -o {path}`")
    )]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A plan file of another format version.
    #[error("{path} was written in plan format {found}; this houba reads format {expected}")]
    #[diagnostic(
        code(houba::plan_file::version),
        help("run `houba plan -o {path}` again with this houba")
    )]
    Version {
        /// The file.
        path: String,
        /// Its format version.
        found: String,
        /// The version this houba reads.
        expected: String,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Document {
    format_version: String,
    plan: Plan,
}

/// The bytes of a plan file.
pub fn to_bytes(plan: &Plan) -> Vec<u8> {
    let doc = Document {
        format_version: FILE_FORMAT_VERSION.to_string(),
        plan: plan.clone(),
    };
    let mut text = serde_json::to_vec_pretty(&doc).expect("a plan always serialises");
    text.push(b'\n');
    text
}

/// Read a plan file's bytes; `path` names the file in errors.
pub fn from_bytes(path: &str, bytes: &[u8]) -> Result<Plan, PlanFileError> {
    let invalid = |message: String| PlanFileError::Invalid {
        path: path.to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let found = value
        .get("format_version")
        .and_then(|v| v.as_str())
        .ok_or_else(|| invalid("no format_version".into()))?;
    if found != FILE_FORMAT_VERSION {
        return Err(PlanFileError::Version {
            path: path.to_string(),
            found: found.to_string(),
            expected: FILE_FORMAT_VERSION.to_string(),
        });
    }
    let doc: Document = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    Ok(doc.plan)
}
