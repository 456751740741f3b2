//! Unit tests of `[metrics]` and `[[notify]]` parsing.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Operations, String> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    super::super::settings_from_sources(Some((Path::new("houba.toml"), toml)), &[], &env)
        .map(|s| s.operations)
        .map_err(|e| e.to_string())
}

#[test]
fn sinks_parse_with_defaults_and_secrets_from_the_environment() {
    let ops = load(
        "[metrics]\nfile = \"m/houba.prom\"\n\n[[notify]]\nkind = \"ntfy\"\nurl = \"http://ntfy.svc/\"\ntopics = { critical = \"hl-crit\", warning = \"hl-warn\", info = \"hl-info\" }\ntoken_env = \"T\"\n\n[[notify]]\nkind = \"alertmanager\"\nurl = \"http://am:9093\"\nevents = [\"drift_found\"]\nmin_severity = \"critical\"\n",
        &[("T", "tk_secret"), ("HOUBA_PUSHGATEWAY", "http://pg:9091/")],
    )
    .unwrap();
    assert_eq!(ops.metrics.pushgateway.as_deref(), Some("http://pg:9091"));
    assert_eq!(ops.notify[0].name, "ntfy-0");
    assert_eq!(ops.notify[0].url, "http://ntfy.svc");
    let SinkKind::Ntfy { token, topics, .. } = &ops.notify[0].kind else {
        panic!("ntfy")
    };
    assert_eq!(token.as_ref().unwrap().expose(), "tk_secret");
    assert_eq!(topics[&Severity::Critical], "hl-crit");
    assert!(!format!("{:?}", ops).contains("tk_secret"));
    assert!(!serde_json::to_string(&ops).unwrap().contains("tk_secret"));
    let am = &ops.notify[1];
    assert_eq!(am.events, vec![EventKind::DriftFound]);
    assert!(!am.wants(EventKind::DriftFound, Severity::Warning));
    assert!(am.wants(EventKind::DriftFound, Severity::Critical));
}

#[test]
fn mistakes_are_refused_with_their_position() {
    let cases = [
        (
            "[[notify]]\nkind = \"sms\"\nurl = \"http://x\"\n",
            "houba.toml:2:8",
            "unknown sink kind",
        ),
        (
            "[[notify]]\nkind = \"ntfy\"\nurl = \"http://x\"\n",
            "houba.toml:1:1",
            "needs a `topic`",
        ),
        (
            "[[notify]]\nkind = \"ntfy\"\nurl = \"http://x\"\ntopic = \"a b\"\n",
            "houba.toml:4:9",
            "not an ntfy topic",
        ),
        (
            "[[notify]]\nkind = \"webhook\"\nurl = \"http://u:p@x\"\n",
            "houba.toml:3:7",
            "credentials",
        ),
        (
            "[[notify]]\nkind = \"webhook\"\nurl = \"http://x\"\nevents = [\"drift\"]\n",
            "houba.toml:4:11",
            "unknown event",
        ),
        (
            "[[notify]]\nkind = \"webhook\"\nurl = \"http://x\"\nmin_severity = \"loud\"\n",
            "houba.toml:4:16",
            "unknown severity",
        ),
        (
            "[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://x\"\n[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://y\"\n",
            "notify[1].name",
            "already named",
        ),
        (
            "[metrics]\npushgateway = \"pg:9091\"\n",
            "houba.toml:2:15",
            "not an http(s) URL",
        ),
    ];
    for (toml, at, what) in cases {
        let e = load(toml, &[]).unwrap_err();
        assert!(e.contains(at) && e.contains(what), "{toml}: {e}");
    }
}
