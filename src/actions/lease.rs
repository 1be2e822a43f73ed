//! One rollback at a time per Deployment, across consoles and watchers: a
//! coordination.k8s.io Lease named after the Deployment, held for the rollback's
//! whole life (plan, patch, rollout and verification) by `user@host#process`. Only
//! the same process may take it again: a second console of the same user on the same
//! host is another holder.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    Acquired,
    HeldBy {
        holder: String,
        since: Option<Timestamp>,
        /// When the Lease lapses unless its holder renews it: a dead holder's wait.
        expires: Option<Timestamp>,
    },
}

/// This process's holder identity: `user@host#pid-nonce`. The nonce keeps a restarted
/// process with a reused pid from taking over a Lease its predecessor held.
pub fn holder(actor: &str) -> String {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let nonce = NONCE.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
    format!("{actor}#{}-{nonce}", std::process::id())
}

pub fn lease_name(deployment: &str) -> String {
    format!("backout-rollback-{deployment}")
}

/// When the Lease lapses unless renewed; `None` when it says nothing of its renewal.
fn expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0)?;
    let duration =
        jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    renewed.checked_add(duration).ok()
}

fn expired(lease: &Lease, now: Timestamp) -> bool {
    lease
        .spec
        .as_ref()
        .and_then(expiry)
        .is_none_or(|at| at < now)
}

fn held_by(spec: LeaseSpec) -> Claim {
    Claim::HeldBy {
        expires: expiry(&spec),
        since: spec.acquire_time.map(|t| t.0),
        holder: spec.holder_identity.unwrap_or_default(),
    }
}

fn spec(me: &str, hold: Duration, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(me.into()),
        lease_duration_seconds: Some(hold.as_secs() as i32),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..Default::default()
    }
}

/// Takes the Lease for `deployment`, or says who holds it. Racing claimants resolve
/// through the API server's optimistic concurrency: exactly one create or update wins.
pub async fn claim(
    client: &Client,
    namespace: &str,
    deployment: &str,
    me: &str,
    hold: Duration,
) -> Result<Claim, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(deployment);
    let now = Timestamp::now();
    let fresh = Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        spec: Some(spec(me, hold, now)),
    };
    // Read first: once a Deployment has been rolled back its released Lease stays, so
    // a create would mostly be refused and cost a round trip before the read.
    let current = match api.get_opt(&name).await? {
        Some(current) => current,
        None => match api.create(&PostParams::default(), &fresh).await {
            Ok(_) => return Ok(Claim::Acquired),
            Err(kube::Error::Api(s)) if s.code == 409 => api.get(&name).await?,
            Err(e) => return Err(e),
        },
    };
    let holder = current
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    // An empty holder is a released Lease: free to take.
    if !holder.is_empty() && holder != me && !expired(&current, now) {
        return Ok(held_by(current.spec.unwrap_or_default()));
    }
    let mut taken = current.clone();
    taken.spec = Some(spec(me, hold, now));
    match api.replace(&name, &PostParams::default(), &taken).await {
        Ok(_) => Ok(Claim::Acquired),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let winner = api.get(&name).await?;
            Ok(held_by(winner.spec.unwrap_or_default()))
        }
        Err(e) => Err(e),
    }
}

/// Gives the Lease back if `me` still holds it, by clearing its holder as client-go's
/// leader election does: an update guarded by the resourceVersion, so a Lease someone
/// else took meanwhile is left alone, and RBAC need not grant delete.
pub async fn release(client: &Client, namespace: &str, deployment: &str, me: &str) {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(deployment);
    if let Ok(mut lease) = api.get(&name).await {
        if let Some(spec) = lease
            .spec
            .as_mut()
            .filter(|s| s.holder_identity.as_deref() == Some(me))
        {
            spec.holder_identity = None;
            let _ = api.replace(&name, &PostParams::default(), &lease).await;
        }
    }
}

/// Keeps the Lease held while the rollback rolls out and is verified, renewing it
/// every third of its duration, until it is given back. A holder that dies
/// stops renewing, and the Lease expires for the next one to take.
pub fn hold(
    client: Client,
    namespace: String,
    deployment: String,
    me: String,
    duration: Duration,
) -> Held {
    let (stop, mut released) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client.clone(), &namespace);
        let name = lease_name(&deployment);
        let mut every = tokio::time::interval(duration / 3);
        every.tick().await;
        loop {
            tokio::select! {
                _ = &mut released => break,
                _ = every.tick() => {
                    let Ok(mut lease) = api.get(&name).await else { continue };
                    let Some(spec) = lease.spec.as_mut().filter(|s| s.holder_identity.as_deref() == Some(me.as_str())) else {
                        // Taken over (it expired while this process could not renew).
                        tracing::warn!("the rollback lease of {deployment} is no longer held by {me}");
                        return;
                    };
                    spec.renew_time = Some(MicroTime(Timestamp::now()));
                    if let Err(e) = api.replace(&name, &PostParams::default(), &lease).await {
                        tracing::warn!("renewing the rollback lease of {deployment}: {e}");
                    }
                }
            }
        }
        release(&client, &namespace, &deployment, &me).await;
    });
    Held { stop, task }
}

/// A Lease held for a rollback under way; `give_back` ends the renewals and releases it.
pub struct Held {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Held {
    pub async fn give_back(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
