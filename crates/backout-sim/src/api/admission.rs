//! Defaults and validation applied before a write is stored, as the API server's
//! defaulting and validation stages do for the kinds the simulator reasons about.

use serde_json::{json, Value};

use super::status::ApiError;
use crate::resources::ResourceDef;

pub fn admit(res: &ResourceDef, obj: &mut Value, current: Option<&Value>) -> Result<(), ApiError> {
    match res.kind {
        "Deployment" => {
            default_deployment(obj);
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
            validate_workload(res, obj, current)
        }
        "ReplicaSet" => {
            if obj["spec"]["replicas"].is_null() {
                obj["spec"]["replicas"] = json!(1);
            }
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
            validate_workload(res, obj, current)
        }
        "Pod" => {
            default_pod_spec(&mut obj["spec"]);
            Ok(())
        }
        "Rollout" => {
            default_field(&mut obj["spec"], "replicas", json!(1));
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn default_deployment(obj: &mut Value) {
    let spec = &mut obj["spec"];
    for (field, value) in [
        ("replicas", json!(1)),
        ("revisionHistoryLimit", json!(10)),
        ("progressDeadlineSeconds", json!(600)),
    ] {
        if spec[field].is_null() {
            spec[field] = value;
        }
    }
    if spec["strategy"]["type"].is_null() {
        spec["strategy"]["type"] = json!("RollingUpdate");
    }
    if spec["strategy"]["type"] == "RollingUpdate" {
        let ru = &mut spec["strategy"]["rollingUpdate"];
        for field in ["maxSurge", "maxUnavailable"] {
            if ru[field].is_null() {
                ru[field] = json!("25%");
            }
        }
    }
}

fn default_field(obj: &mut Value, field: &str, value: Value) {
    if obj.is_object() && obj[field].is_null() {
        obj[field] = value;
    }
}

/// The real API server's defaults for a pod spec, so that templates read back, and
/// `kubectl rollout history --revision` describes them, as they would on a cluster.
fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec[list].as_array_mut() else {
            continue;
        };
        for c in containers {
            default_container(c);
        }
    }
}

fn default_container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("");
    // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
    let tag = image
        .rsplit('/')
        .next()
        .and_then(|last| last.split_once(':'))
        .map(|(_, tag)| tag);
    let pull = if image.contains('@') || tag.is_some_and(|t| t != "latest") {
        "IfNotPresent"
    } else {
        "Always"
    };
    default_field(c, "imagePullPolicy", json!(pull));
    default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(c, "terminationMessagePolicy", json!("File"));
    if let Some(ports) = c["ports"].as_array_mut() {
        for port in ports {
            default_field(port, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &mut c[probe];
        if !p.is_object() {
            continue;
        }
        default_field(p, "timeoutSeconds", json!(1));
        default_field(p, "periodSeconds", json!(10));
        default_field(p, "successThreshold", json!(1));
        default_field(p, "failureThreshold", json!(3));
        default_field(&mut p["httpGet"], "scheme", json!("HTTP"));
    }
}

fn validate_workload(
    res: &ResourceDef,
    obj: &Value,
    current: Option<&Value>,
) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let invalid = |field: &str, why: &str| {
        ApiError::invalid(format!(
            "{}.{} \"{name}\" is invalid: {field}: {why}",
            res.kind, res.group
        ))
    };
    let spec = &obj["spec"];
    let selector = &spec["selector"]["matchLabels"];
    let Some(selector_map) = selector.as_object().filter(|m| !m.is_empty()) else {
        return Err(invalid("spec.selector", "Required value"));
    };
    let labels = &spec["template"]["metadata"]["labels"];
    if selector_map.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        return Err(invalid(
            "spec.template.metadata.labels",
            &format!("Invalid value: {labels}: `selector` does not match template `labels`"),
        ));
    }
    if let Some(current) = current {
        if current["spec"]["selector"] != spec["selector"] {
            return Err(invalid(
                "spec.selector",
                &format!("Invalid value: {}: field is immutable", spec["selector"]),
            ));
        }
    }
    if spec["replicas"].as_i64().is_some_and(|r| r < 0) {
        return Err(invalid(
            "spec.replicas",
            "Invalid value: must be greater than or equal to 0",
        ));
    }
    let containers = spec["template"]["spec"]["containers"].as_array();
    if containers.is_none_or(|c| c.is_empty()) {
        return Err(invalid("spec.template.spec.containers", "Required value"));
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        for field in ["name", "image"] {
            if c[field].as_str().is_none_or(str::is_empty) {
                return Err(invalid(
                    &format!("spec.template.spec.containers[{i}].{field}"),
                    "Required value",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::DEPLOYMENTS;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:1"}]}}}})
    }

    #[test]
    fn a_deployment_gets_kubernetes_defaults() {
        let mut d = deployment();
        admit(&DEPLOYMENTS, &mut d, None).unwrap();
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn an_untagged_or_latest_image_is_pulled_always_and_a_registry_port_is_no_tag() {
        for (image, pull) in [
            ("web", "Always"),
            ("web:latest", "Always"),
            ("registry:5000/web", "Always"),
            ("registry:5000/web:2", "IfNotPresent"),
            ("web@sha256:abc", "IfNotPresent"),
        ] {
            let mut c = json!({"name": "app", "image": image, "ports": [{"containerPort": 80}]});
            default_container(&mut c);
            assert_eq!(c["imagePullPolicy"], pull, "{image}");
            assert_eq!(c["ports"][0]["protocol"], "TCP");
        }
    }

    #[test]
    fn a_selector_that_misses_the_template_is_invalid() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        let err = admit(&DEPLOYMENTS, &mut d, None).unwrap_err();
        assert_eq!(err.code.as_u16(), 422);
        assert!(
            err.message
                .contains("`selector` does not match template `labels`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_selector_is_immutable() {
        let current = deployment();
        let mut d = deployment();
        d["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        d["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let err = admit(&DEPLOYMENTS, &mut d, Some(&current)).unwrap_err();
        assert!(err.message.contains("field is immutable"));
    }
}
