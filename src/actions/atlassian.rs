//! The bodies of the two notifiers shaped like Atlassian's APIs: a Statuspage
//! incident (`POST /v1/pages/{page}/incidents`) and a Jira issue (`POST
//! /rest/api/2/issue`). `notify.rs` sends them with its retries.

use serde_json::{json, Value};

use super::notify::Notice;

/// A Statuspage incident: investigating while paged, monitoring once rolled back
/// (a fix is in, its effect being watched), resolved when verified.
pub fn statuspage_body(n: &Notice, component: Option<&str>) -> Value {
    let (status, component_status) = match n {
        Notice::Page { .. } => ("investigating", "degraded_performance"),
        Notice::RolledBack { .. } => ("monitoring", "degraded_performance"),
        Notice::Resolved { .. } => ("resolved", "operational"),
    };
    let mut incident = json!({
        "name": n.headline(),
        "status": status,
        "body": details(n),
        "deliver_notifications": true,
    });
    if let Some(id) = component {
        incident["component_ids"] = json!([id]);
        incident["components"] = json!({ id: component_status });
    }
    json!({ "incident": incident })
}

/// A Jira issue for a rollback or a page; `None` for a resolution, which files no
/// ticket of its own.
pub fn jira_body(n: &Notice, project: &str, issue_type: &str) -> Option<Value> {
    if matches!(n, Notice::Resolved { .. }) {
        return None;
    }
    let mut labels = vec!["backout".to_string()];
    labels.extend(n.incident().map(|id| id.replace(' ', "-")));
    Some(json!({"fields": {
        "project": {"key": project},
        "issuetype": {"name": issue_type},
        "summary": n.headline(),
        "description": details(n),
        "labels": labels,
    }}))
}

/// What happened, in plain text: the same facts Slack shows.
fn details(n: &Notice) -> String {
    let mut text = match n {
        Notice::RolledBack {
            from_revision,
            from_images,
            to_revision,
            to_images,
            trigger,
            by,
            reason,
            ..
        } => format!(
            "Rolled back from revision {from_revision} ({}) to revision {to_revision} ({}) by {by}.\nTrigger: {}.\nWhy: {reason}.",
            from_images.join(", "),
            to_images.join(", "),
            trigger.as_deref().unwrap_or("none (by hand)")
        ),
        Notice::Page { summary, .. } | Notice::Resolved { summary, .. } => summary.clone(),
    };
    if let Some(id) = n.incident() {
        text.push_str(&format!("\nIncident: {id}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::notify::sample as rolled_back;

    #[test]
    fn a_rollback_is_a_monitoring_incident_that_degrades_its_component() {
        let b = statuspage_body(&rolled_back(), Some("cmp1"));
        assert_eq!(b["incident"]["status"], "monitoring");
        assert_eq!(b["incident"]["components"]["cmp1"], "degraded_performance");
        assert!(b["incident"]["body"]
            .as_str()
            .unwrap()
            .contains("revision 1 (checkout:1.4.0)"));
        let resolved = Notice::Resolved {
            service: "shop/checkout".into(),
            summary: "verified".into(),
            incident: None,
        };
        let r = statuspage_body(&resolved, Some("cmp1"));
        assert_eq!(
            (
                &r["incident"]["status"],
                &r["incident"]["components"]["cmp1"]
            ),
            (&json!("resolved"), &json!("operational"))
        );
        assert!(statuspage_body(&resolved, None)["incident"]["components"].is_null());
    }

    #[test]
    fn a_rollback_files_one_ticket_in_the_project_and_a_resolution_none() {
        let b = jira_body(&rolled_back(), "OPS", "Incident").unwrap();
        assert_eq!(b["fields"]["project"]["key"], "OPS");
        assert_eq!(b["fields"]["issuetype"]["name"], "Incident");
        assert_eq!(b["fields"]["labels"], json!(["backout", "inc-1"]));
        assert!(b["fields"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Rolled back shop/checkout"));
        let resolved = Notice::Resolved {
            service: "s".into(),
            summary: "ok".into(),
            incident: None,
        };
        assert!(jira_body(&resolved, "OPS", "Incident").is_none());
    }
}
