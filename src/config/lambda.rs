//! `[[lambda]]`: AWS Lambda aliases backout watches and can shift back. Each alias is
//! a service: its triggers are asked of Prometheus with `$SERVICE` and `$NAMESPACE`
//! as for a Deployment (Lambda's CloudWatch metrics reach Prometheus through an
//! exporter), and its revisions are the function's published versions.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    /// The function's name (not its ARN).
    pub function: String,
    /// The alias that takes the traffic.
    #[serde(default = "default_alias")]
    pub alias: String,
    /// The service name the triggers and the console use; the function's by default.
    pub service: Option<String>,
    /// The namespace it is listed under, and `$NAMESPACE` in its triggers.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The AWS region; the usual chain (AWS_REGION, the profile) when left out.
    pub region: Option<String>,
    /// Another endpoint for the Lambda API (a simulator, moto, a VPC endpoint).
    pub endpoint: Option<String>,
    /// A CA to trust for that endpoint, beside the system's. Relative to backout.toml.
    pub ca_file: Option<std::path::PathBuf>,
    /// Use no AWS credentials (a placeholder signature): only for a simulator, which
    /// checks none.
    #[serde(default)]
    pub unsigned: bool,
}

fn default_alias() -> String {
    "live".into()
}

fn default_namespace() -> String {
    "lambda".into()
}

impl LambdaConfig {
    pub fn service(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.function)
    }

    pub fn check(&self) -> Result<(), String> {
        let named = |what: &str| format!("[[lambda]] function {:?}: {what}", self.function);
        if self.function.is_empty() || self.function.starts_with("arn:") {
            return Err(named("give the function's name, not empty and not an ARN"));
        }
        if self.alias.is_empty() || self.alias.chars().all(|c| c.is_ascii_digit()) {
            return Err(named(&format!(
                "alias {:?} must be an alias name such as \"live\", not a version",
                self.alias
            )));
        }
        match &self.endpoint {
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => Err(named(
                &format!("endpoint {u:?} must start with http:// or https://"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> LambdaConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_alias_defaults_to_live_in_namespace_lambda_under_its_functions_name() {
        let c = parse(r#"function = "payments""#);
        assert_eq!((c.alias.as_str(), c.namespace.as_str()), ("live", "lambda"));
        assert_eq!(c.service(), "payments");
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_version_an_arn_or_a_bad_endpoint_is_named() {
        let err = parse("function = \"payments\"\nalias = \"7\"")
            .check()
            .unwrap_err();
        assert!(err.contains("payments") && err.contains("\"7\""), "{err}");
        let err = parse(r#"function = "arn:aws:lambda:eu-west-1:1:function:payments""#)
            .check()
            .unwrap_err();
        assert!(err.contains("not an ARN"), "{err}");
        let err = parse("function = \"p\"\nendpoint = \"localhost:5000\"")
            .check()
            .unwrap_err();
        assert!(err.contains("http://"), "{err}");
    }
}
