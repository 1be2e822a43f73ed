//! Bearer tokens, users and their roles. Three users ship: an on-call editor who may
//! roll back, a viewer who may only look (and is told so in Kubernetes' words), and an
//! outsider granted nothing. More can be added with RBAC rules, as a service account
//! bound to a ClusterRole would be.

use axum::http::{HeaderMap, StatusCode};

use super::status::ApiError;
use crate::resources::ResourceDef;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything, as `cluster-admin` in the simulator's one cluster.
    Editor,
    /// get, list and watch, as the built-in `view` ClusterRole: which grants no
    /// Secrets and no Leases.
    Viewer,
    /// Authenticated but granted nothing: for RBAC drills and tests.
    Outsider,
    /// What these RBAC rules grant, and nothing else.
    Granted(Vec<Rule>),
}

/// One RBAC PolicyRule: apiGroups × resources × verbs (`*` matches anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub api_groups: Vec<String>,
    /// Plural names; a subresource is `deployments/scale`.
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    /// A Role's rule holds in its own namespace only; a ClusterRole's (`None`) holds
    /// everywhere.
    pub namespace: Option<String>,
}

impl Rule {
    fn grants(&self, verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
        let has = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        let scoped = self
            .namespace
            .as_deref()
            .is_none_or(|own| namespace == Some(own));
        scoped
            && has(&self.verbs, verb)
            && has(&self.api_groups, group)
            && has(&self.resources, resource)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub token: String,
    pub role: Role,
}

impl User {
    pub fn groups(&self) -> Vec<&'static str> {
        match self.role {
            Role::Editor => vec!["oncall", "system:authenticated"],
            Role::Viewer => vec!["viewers", "system:authenticated"],
            Role::Outsider | Role::Granted(_) => vec!["system:authenticated"],
        }
    }
}

pub const EDITOR_TOKEN: &str = "backout-sim-editor";
pub const VIEWER_TOKEN: &str = "backout-sim-viewer";
pub const OUTSIDER_TOKEN: &str = "backout-sim-outsider";

#[derive(Debug, Clone)]
pub struct Users(Vec<User>);

impl Default for Users {
    fn default() -> Self {
        Users(vec![
            User {
                name: "oncall-editor".into(),
                token: EDITOR_TOKEN.into(),
                role: Role::Editor,
            },
            User {
                name: "oncall-viewer".into(),
                token: VIEWER_TOKEN.into(),
                role: Role::Viewer,
            },
            User {
                name: "outsider".into(),
                token: OUTSIDER_TOKEN.into(),
                role: Role::Outsider,
            },
        ])
    }
}

impl Users {
    pub fn all(&self) -> &[User] {
        &self.0
    }

    pub fn with(mut self, extra: impl IntoIterator<Item = User>) -> Users {
        self.0.extend(extra);
        self
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&User, ApiError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        token
            .and_then(|t| self.0.iter().find(|u| u.token == t))
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"))
    }
}

/// What a request asks to do, in RBAC's terms.
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub resource: &'a ResourceDef,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

pub fn allowed(user: &User, attrs: &Attributes) -> bool {
    if attrs.resource.review {
        return true; // every authenticated user may ask who they are and what they may do
    }
    match &user.role {
        Role::Editor => true,
        Role::Viewer => {
            matches!(attrs.verb, "get" | "list" | "watch")
                && !matches!(attrs.resource.plural, "secrets" | "leases")
        }
        Role::Outsider => false,
        Role::Granted(rules) => {
            let resource = match attrs.subresource {
                Some(sub) => format!("{}/{sub}", attrs.resource.plural),
                None => attrs.resource.plural.to_string(),
            };
            rules
                .iter()
                .any(|r| r.grants(attrs.verb, attrs.resource.group, &resource, attrs.namespace))
        }
    }
}

pub fn authorize(user: &User, attrs: &Attributes) -> Result<(), ApiError> {
    if allowed(user, attrs) {
        return Ok(());
    }
    let res = attrs.resource;
    let object = match attrs.name {
        Some(n) => format!("{} \"{n}\"", res.qualified()),
        None => res.qualified(),
    };
    let resource = match attrs.subresource {
        Some(s) => format!("{}/{s}", res.plural),
        None => res.plural.to_string(),
    };
    let scope = match attrs.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_string(),
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{object} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\"{scope}",
            user.name, attrs.verb, res.group
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::DEPLOYMENTS;

    #[test]
    fn a_viewer_is_forbidden_to_patch_in_kubernetes_words() {
        let users = Users::default();
        let viewer = users.all().iter().find(|u| u.role == Role::Viewer).unwrap();
        let attrs = Attributes {
            verb: "patch",
            resource: &DEPLOYMENTS,
            subresource: None,
            namespace: Some("shop"),
            name: Some("web"),
        };
        let err = authorize(viewer, &attrs).unwrap_err();
        assert_eq!(err.code, StatusCode::FORBIDDEN);
        assert_eq!(
            err.message,
            "deployments.apps \"web\" is forbidden: User \"oncall-viewer\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"shop\""
        );
        assert!(authorize(
            viewer,
            &Attributes {
                verb: "list",
                ..attrs
            }
        )
        .is_ok());
        // As Kubernetes' own `view` role: no Secrets.
        assert!(!allowed(
            viewer,
            &Attributes {
                verb: "list",
                resource: &crate::resources::SECRETS,
                ..attrs
            }
        ));
    }

    #[test]
    fn a_roles_rule_holds_in_its_own_namespace_only() {
        let role = |namespace: Option<&str>| User {
            name: "sa".into(),
            token: "t".into(),
            role: Role::Granted(vec![Rule {
                api_groups: vec!["apps".into()],
                resources: vec!["deployments".into()],
                verbs: vec!["list".into()],
                namespace: namespace.map(String::from),
            }]),
        };
        let list_in = |ns: Option<&'static str>| Attributes {
            verb: "list",
            resource: &DEPLOYMENTS,
            subresource: None,
            namespace: ns,
            name: None,
        };
        let shop = role(Some("shop"));
        assert!(allowed(&shop, &list_in(Some("shop"))));
        assert!(!allowed(&shop, &list_in(Some("other"))));
        assert!(!allowed(&shop, &list_in(None)), "not across namespaces");
        let cluster = role(None);
        assert!(allowed(&cluster, &list_in(Some("other"))) && allowed(&cluster, &list_in(None)));
    }

    #[test]
    fn unknown_tokens_are_unauthorized() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer nope".parse().unwrap());
        assert_eq!(
            Users::default().authenticate(&headers).unwrap_err().code,
            StatusCode::UNAUTHORIZED
        );
    }
}
