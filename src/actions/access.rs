//! Who backout acts as, and whether that user may roll back: a SelfSubjectReview for
//! the name, a SelfSubjectAccessReview for `patch` on Deployments. A user who may not
//! patch gets read-only mode, with the reason.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

/// The user the cluster sees, or `None` when it cannot say (old servers).
pub async fn whoami(client: &Client) -> Option<String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .ok()?;
    review.status?.user_info?.username
}

/// `user@host`, as the Lease holder and the change-cause name the actor.
pub async fn actor(client: &Client) -> String {
    let user = whoami(client)
        .await
        .unwrap_or_else(|| "unknown-user".into());
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-host".into());
    format!("{user}@{host}")
}

/// `Ok(())` when the user may patch Deployments in `namespace`; otherwise why not.
pub async fn may_roll_back(client: &Client, namespace: &str) -> Result<(), String> {
    may_patch(client, namespace, "apps", "deployments").await
}

/// `Ok(())` when the user may patch `resource` in `group` in `namespace`; otherwise why not.
pub async fn may_patch(
    client: &Client,
    namespace: &str,
    group: &str,
    resource: &str,
) -> Result<(), String> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some("patch".into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    match api.create(&PostParams::default(), &review).await {
        Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => Ok(()),
        Ok(r) => {
            let why = r.status.and_then(|s| s.reason).unwrap_or_default();
            Err(format!("read-only: you may not patch {qualified} in namespace {namespace:?} ({why}); a rollback needs the `patch` verb on {resource}"))
        }
        Err(e) => Err(format!("read-only: could not check permissions to patch {qualified} in namespace {namespace:?}: {e}")),
    }
}
