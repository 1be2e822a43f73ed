//! The effect runner: the one place side effects happen. It performs what `update`
//! asks for and reports failures back as messages, so they show instead of vanishing.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::journal::Journal;
use crate::engine::{Effect, Msg};

pub fn spawn(
    journal: Option<Journal>,
    mut effects: mpsc::Receiver<Effect>,
    tx: mpsc::Sender<Msg>,
) -> JoinHandle<()> {
    let journal = journal.map(|j| Arc::new(Mutex::new(j)));
    tokio::spawn(async move {
        while let Some(effect) = effects.recv().await {
            let result = match &effect {
                Effect::Journal(record) => match &journal {
                    Some(j) => {
                        let (j, record) = (j.clone(), record.clone());
                        // fsync blocks: keep it off the async workers.
                        tokio::task::spawn_blocking(move || {
                            j.lock().expect("journal lock").append(&record)
                        })
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                    }
                    None => Ok(()),
                },
                Effect::Page { service, summary } => {
                    // Notifiers arrive with the rollback executor; until then a page is logged.
                    tracing::warn!(%service, "page: {summary}");
                    Ok(())
                }
            };
            if let Err(error) = result {
                let what = match &effect {
                    Effect::Journal(_) => "journal write",
                    Effect::Page { .. } => "page",
                };
                if tx
                    .send(Msg::EffectFailed {
                        what: what.into(),
                        error,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    })
}
