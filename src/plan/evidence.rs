//! Evidence in the plan: what a placement attaches besides its image (SBOMs, a signature,
//! the upstream's own referrers). Pure data; `apply` and `evidence/` do the work.

use serde::{Deserialize, Serialize};

/// The evidence an action attaches, shown under it (`+ sbom spdx,cyclonedx`, `+ signature`,
/// `+ 2 upstream referrers`) and counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvidencePlan {
    /// SBOM formats to attach (`spdx`, `cyclonedx`), on the digest and each platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sbom: Vec<String>,
    /// Whether houba signs the digest (and every SBOM it attaches).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signature: bool,
    /// Referrers and cosign tags of the upstream digest that travel with it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub upstream: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl EvidencePlan {
    /// Nothing to attach.
    pub fn is_empty(&self) -> bool {
        self.sbom.is_empty() && !self.signature && self.upstream == 0
    }

    /// The plan lines, without symbols: `sbom spdx,cyclonedx`, `signature`,
    /// `2 upstream referrers`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.sbom.is_empty() {
            lines.push(format!("sbom {}", self.sbom.join(",")));
        }
        if self.signature {
            lines.push("signature".to_owned());
        }
        match self.upstream {
            0 => {}
            1 => lines.push("1 upstream referrer".to_owned()),
            n => lines.push(format!("{n} upstream referrers")),
        }
        lines
    }

    /// One line for drift details: `sbom spdx, signature`.
    pub fn summary(&self) -> String {
        self.lines().join(", ")
    }

    /// The union of two.
    pub fn merge(&mut self, other: &EvidencePlan) {
        for f in &other.sbom {
            if !self.sbom.contains(f) {
                self.sbom.push(f.clone());
            }
        }
        self.sbom.sort_by_key(|f| (f != "spdx", f.clone()));
        self.signature |= other.signature;
        self.upstream = self.upstream.max(other.upstream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_travels() {
        let plan = EvidencePlan {
            sbom: vec!["spdx".into(), "cyclonedx".into()],
            signature: true,
            upstream: 2,
        };
        assert_eq!(
            plan.lines(),
            vec!["sbom spdx,cyclonedx", "signature", "2 upstream referrers"]
        );
        assert!(EvidencePlan::default().lines().is_empty());
        let mut a = EvidencePlan {
            sbom: vec!["cyclonedx".into()],
            ..EvidencePlan::default()
        };
        a.merge(&EvidencePlan {
            sbom: vec!["spdx".into()],
            signature: true,
            upstream: 0,
        });
        assert_eq!(a.sbom, vec!["spdx", "cyclonedx"]);
        assert!(a.signature);
    }
}
