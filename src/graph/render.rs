//! Renderings of the desired graph: Graphviz DOT for people, JSON for tools. Both are
//! deterministic (compile order), so they diff cleanly between runs.

use std::fmt::Write;

use serde::Serialize;

use super::{Address, Alias, Collision, DesiredGraph, Node, Placement, PlacementKind};

/// Version of the JSON document `to_json` produces.
pub const GRAPH_FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'g> {
    format_version: u32,
    nodes: Vec<NodeView<'g>>,
    edges: Vec<Edge<'g>>,
    warnings: Vec<String>,
    collisions: &'g [Collision],
}

#[derive(Serialize)]
#[serde(tag = "node", rename_all = "snake_case")]
enum NodeView<'g> {
    Placement {
        kind: PlacementKind,
        #[serde(flatten)]
        placement: &'g Placement,
    },
    Alias(&'g Alias),
}

/// `from` depends on `to`.
#[derive(Serialize)]
struct Edge<'g> {
    from: &'g Address,
    to: &'g Address,
}

impl DesiredGraph {
    fn edges_in_order(&self) -> Vec<Edge<'_>> {
        let mut edges: Vec<_> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .collect();
        edges.sort();
        edges
            .into_iter()
            .map(|(a, b)| Edge {
                from: self.graph[a].address(),
                to: self.graph[b].address(),
            })
            .collect()
    }

    /// The graph as a JSON document: `format_version`, `nodes` (compile order), `edges`
    /// (`from` depends on `to`), `warnings`, `collisions`.
    pub fn to_json(&self) -> String {
        let doc = Document {
            format_version: GRAPH_FORMAT_VERSION,
            nodes: self
                .nodes()
                .map(|n| match n {
                    Node::Placement(p) => NodeView::Placement {
                        kind: p.kind(),
                        placement: p,
                    },
                    Node::Alias(a) => NodeView::Alias(a),
                })
                .collect(),
            edges: self.edges_in_order(),
            warnings: self.warnings.iter().map(ToString::to_string).collect(),
            collisions: &self.collisions,
        };
        let mut text = serde_json::to_string_pretty(&doc).expect("plain data serialises");
        text.push('\n');
        text
    }

    /// The graph in Graphviz DOT: placements are boxes (copy) or double boxes (build),
    /// aliases are ellipses pointing at their placement.
    pub fn to_dot(&self) -> String {
        let mut out =
            String::from("digraph desired {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
        for node in self.nodes() {
            let (shape, detail) = match node {
                Node::Placement(p) => {
                    let verb = match p.kind() {
                        PlacementKind::Copy => "copy",
                        PlacementKind::Build => "build",
                    };
                    let mut detail = format!(
                        "{verb} from {}/{}:{}",
                        p.source.registry, p.source.repository, p.source.tag
                    );
                    if !p.transform.is_empty() {
                        let steps: Vec<&str> = p.transform.iter().map(|s| s.name()).collect();
                        let _ = write!(detail, "\ntransform: {}", steps.join(", "));
                    }
                    if !p.platforms.is_empty() {
                        let platforms: Vec<String> =
                            p.platforms.iter().map(ToString::to_string).collect();
                        let _ = write!(detail, "\nplatforms: {}", platforms.join(", "));
                    }
                    let shape = match p.kind() {
                        PlacementKind::Copy => "box",
                        PlacementKind::Build => "box3d",
                    };
                    (shape, detail)
                }
                Node::Alias(a) => ("ellipse", format!("alias {}", a.tag)),
            };
            let _ = writeln!(
                out,
                "  {} [shape={shape}, label={}];",
                quote(&node.address().to_string()),
                quote(&format!("{}\n{detail}", node.address()))
            );
        }
        for edge in self.edges_in_order() {
            let _ = writeln!(
                out,
                "  {} -> {};",
                quote(&edge.from.to_string()),
                quote(&edge.to.to_string())
            );
        }
        out.push_str("}\n");
        out
    }
}

/// A DOT double-quoted string; newlines become DOT's `\n` line breaks.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
