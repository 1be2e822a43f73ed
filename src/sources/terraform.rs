//! Terraform state files, read every few seconds for when they last changed and
//! their serial: the engine names an infrastructure change near a deploy. A file that
//! cannot be read is said so, never "unchanged".

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use crate::config::terraform::TerraformConfig;
use crate::engine::model::infra::InfraState;
use crate::engine::Msg;

const EVERY: Duration = Duration::from_secs(5);

pub fn spawn(states: Vec<TerraformConfig>, tx: mpsc::Sender<Msg>) {
    if states.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        let mut last: Vec<Option<InfraState>> = vec![None; states.len()];
        loop {
            every.tick().await;
            for (i, cfg) in states.iter().enumerate() {
                let seen = read(cfg).await;
                if last[i].as_ref() != Some(&seen) {
                    last[i] = Some(seen.clone());
                    if tx.send(Msg::Infra(seen)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

async fn read(cfg: &TerraformConfig) -> InfraState {
    let path = cfg.state.clone();
    let name = cfg.name.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<(Timestamp, Option<u64>), String> {
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let modified = meta
            .modified()
            .map_err(|e| e.to_string())
            .and_then(|m| Timestamp::try_from(m).map_err(|e| e.to_string()))?;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let serial = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["serial"].as_u64());
        Ok((modified, serial))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match read {
        Ok((changed_at, serial)) => InfraState {
            name,
            changed_at: Some(changed_at),
            serial,
            error: None,
        },
        Err(e) => InfraState {
            name,
            changed_at: None,
            serial: None,
            error: Some(e),
        },
    }
}
