//! ntfy (<https://docs.ntfy.sh/publish/>): `POST <server>/<topic>` with the message as the
//! body and `Title`, `Priority` (1–5), `Tags`, `Markdown` and `Click` headers, and an
//! `Authorization: Bearer <token>` header for servers that deny anonymous publishing.

use crate::config::operations::{NotifySink, Severity, SinkKind};
use crate::report::metrics::without_url;
use crate::report::run_report::RunSummary;

use super::Event;

/// ntfy priorities: 5 max (urgent), 4 high, 3 default, 2 low.
pub fn priority(event: &Event) -> u8 {
    if event.is_resolution() {
        return 2;
    }
    match event.severity {
        Severity::Critical => 5,
        Severity::Warning => 4,
        Severity::Info => 3,
    }
}

/// The topic an event goes to: the one named for its severity, else the sink's topic.
pub fn topic<'s>(sink: &'s NotifySink, event: &Event) -> Option<&'s str> {
    let SinkKind::Ntfy { topic, topics, .. } = &sink.kind else {
        return None;
    };
    topics
        .get(&event.severity)
        .or(topic.as_ref())
        .map(String::as_str)
}

/// The ntfy tags of an event: the sink's own, then the event kind's.
pub fn tags(sink: &NotifySink, event: &Event) -> Vec<String> {
    let emoji = if event.is_resolution() {
        "white_check_mark"
    } else {
        match event.severity {
            Severity::Critical => "rotating_light",
            Severity::Warning => "warning",
            Severity::Info => "information_source",
        }
    };
    let mut out = vec![
        emoji.to_string(),
        "houba".to_string(),
        event.kind.as_str().to_string(),
    ];
    if let SinkKind::Ntfy { tags, .. } = &sink.kind {
        out.extend(tags.iter().cloned());
    }
    out
}

/// Publishes the event to the sink's topic for its severity.
pub async fn send(sink: &NotifySink, event: &Event, run: &RunSummary) -> Result<(), String> {
    let SinkKind::Ntfy { token, .. } = &sink.kind else {
        return Err("not an ntfy sink".into());
    };
    let topic = topic(sink, event).ok_or("no topic for this severity")?;
    let url = format!("{}/{topic}", sink.url);
    let mut request = super::client()?
        .post(&url)
        .header("Title", event.title())
        .header("Priority", priority(event).to_string())
        .header("Tags", tags(sink, event).join(","))
        .header("Markdown", "yes")
        .body(event.markdown(run));
    if let Some(link) = &sink.link {
        request = request.header("Click", link);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach ntfy at {}: {}", sink.url, without_url(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let hint = match status.as_u16() {
        401 | 403 => " (check the token and that it may publish to this topic)",
        _ => "",
    };
    Err(format!(
        "ntfy at {} answered {status} for topic {topic}{hint}",
        sink.url
    ))
}
