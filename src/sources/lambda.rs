//! The `[[lambda]]` aliases, read every few seconds through the Lambda API (it has
//! no watch): the alias, the function's versions and its known-bad tag, as the same
//! summary and revisions a Deployment gives. A read that changed nothing is not
//! sent; a failed one is reported as the source's health, never as an empty alias.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::lambda::LambdaConfig;
use crate::engine::msg::TargetRead;
use crate::engine::{Msg, ServiceKey, SourceHealth, SourceId};
use crate::targets::lambda;

const EVERY: Duration = Duration::from_secs(5);

/// The service an entry is listed as.
pub fn key_of(cfg: &LambdaConfig) -> ServiceKey {
    ServiceKey::new(&cfg.namespace, cfg.service())
}

pub fn spawn(aliases: Vec<LambdaConfig>, tx: mpsc::Sender<Msg>) {
    if aliases.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut clients = Vec::new();
        for cfg in &aliases {
            clients.push(lambda::aws::client(cfg).await);
        }
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Vec<Option<lambda::Alias>> = vec![None; aliases.len()];
        let mut failures = 0u32;
        loop {
            every.tick().await;
            let mut errors = Vec::new();
            let mut msgs = Vec::new();
            for (i, cfg) in aliases.iter().enumerate() {
                let read = match &clients[i] {
                    Ok(client) => lambda::aws::read(client, cfg)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.clone()),
                };
                match read {
                    Ok(alias) if last[i].as_ref() == Some(&alias) => {}
                    Ok(alias) => {
                        let summary = lambda::summary(&alias, cfg.service());
                        let revisions = lambda::revisions(&alias);
                        last[i] = Some(alias);
                        msgs.push(Msg::Target(TargetRead {
                            service: key_of(cfg),
                            read: Ok((summary, revisions)),
                        }));
                    }
                    Err(e) => {
                        errors.push(e.clone());
                        msgs.push(Msg::Target(TargetRead {
                            service: key_of(cfg),
                            read: Err(e),
                        }));
                    }
                }
            }
            let health = if errors.is_empty() {
                failures = 0;
                SourceHealth::Connected
            } else {
                failures += 1;
                SourceHealth::Retrying {
                    attempt: failures,
                    retry_in_secs: EVERY.as_secs(),
                    error: errors.join("; "),
                }
            };
            msgs.insert(
                0,
                Msg::Source {
                    source: SourceId::Lambda,
                    health,
                },
            );
            for msg in msgs {
                if tx.send(msg).await.is_err() {
                    return; // the core has stopped
                }
            }
        }
    });
}
