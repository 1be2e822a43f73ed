//! The `[[flag]]` feature flags, read from Unleash every few seconds (its admin API
//! has no watch): on or off in their environment, and who last toggled them. A read
//! that changed nothing is not sent; a failed one is sent as such.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::flags::FlagConfig;
use crate::engine::model::flags::FlagState;
use crate::engine::{Msg, ServiceKey};
use crate::targets::flag;

const EVERY: Duration = Duration::from_secs(5);

pub fn spawn(flags: Vec<FlagConfig>, tx: mpsc::Sender<Msg>) {
    if flags.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let clients: Vec<_> = flags.iter().map(flag::http).collect();
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Vec<Option<FlagState>> = vec![None; flags.len()];
        loop {
            every.tick().await;
            for (i, cfg) in flags.iter().enumerate() {
                let key = ServiceKey::new(&cfg.namespace, &cfg.deployment);
                let seen = match &clients[i] {
                    Ok(http) => flag::read(http, cfg, key).await,
                    Err(e) => FlagState {
                        name: cfg.name.clone(),
                        service: key,
                        on: None,
                        changed_at: None,
                        changed_by: None,
                        error: Some(e.clone()),
                    },
                };
                if last[i].as_ref() == Some(&seen) {
                    continue;
                }
                last[i] = Some(seen.clone());
                if tx.send(Msg::Flag(seen)).await.is_err() {
                    return; // the core has stopped
                }
            }
        }
    });
}
