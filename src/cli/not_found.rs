//! One line for a Deployment that is not there, with the nearest name that is:
//! `deployment "chekout" not found in namespace shop (did you mean checkout?)`.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use kube::Client;

/// Why `name` cannot be acted on, read from the namespace's Deployments (their
/// names only). Asked only once a command has failed, so it costs nothing before.
pub async fn deployment(client: &Client, namespace: &str, name: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let names: Option<Vec<String>> =
        api.list_metadata(&ListParams::default())
            .await
            .ok()
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|m| m.metadata.name)
                    .collect()
            });
    explain(namespace, name, names.as_deref())
}

/// The sentence, from the names the namespace holds (`None`: they could not be read).
pub fn explain(namespace: &str, name: &str, names: Option<&[String]>) -> String {
    let head = format!("deployment {name:?} not found in namespace {namespace}");
    match names {
        None => head,
        Some(names) if names.iter().any(|n| n == name) => format!(
            "deployment {name:?} in namespace {namespace} is not watched by backout.toml; add it to a [[watch]] entry's deployments"
        ),
        Some([]) => format!("{head} (it has no Deployments; -n names another namespace)"),
        Some(names) => match closest(name, names) {
            Some(near) => format!("{head} (did you mean {near}?)"),
            None => {
                let some: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
                let more = if names.len() > 5 { ", …" } else { "" };
                format!("{head}; it has {}{more}", some.join(", "))
            }
        },
    }
}

/// The most similar name, if one is similar enough to be a typo of it.
fn closest<'a>(name: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(name, n), n))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_gets_the_nearest_name_and_a_stranger_gets_the_list() {
        let names: Vec<String> = ["checkout", "payments", "frontend"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            explain("shop", "chekout", Some(&names)),
            "deployment \"chekout\" not found in namespace shop (did you mean checkout?)"
        );
        assert_eq!(
            explain("shop", "zzz", Some(&names)),
            "deployment \"zzz\" not found in namespace shop; it has checkout, payments, frontend"
        );
        assert!(explain("shop", "payments", Some(&names)).contains("not watched by backout.toml"));
        assert!(explain("shop", "x", Some(&[])).contains("no Deployments"));
        assert_eq!(
            explain("shop", "x", None),
            "deployment \"x\" not found in namespace shop"
        );
    }
}
