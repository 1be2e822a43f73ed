//! The effect runner: the one place side effects happen. It performs what `update`
//! asks for and reports failures back as messages, so they show instead of vanishing.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::journal::Journal;
use super::notify::{Notice, Notifiers};
use crate::engine::{Effect, Msg};

pub fn spawn(
    journal: Option<Journal>,
    notifiers: Notifiers,
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
                    tracing::warn!(%service, "page: {summary}");
                    // Sent on its own task: a slow notifier never holds up the next effect.
                    let (notifiers, tx) = (notifiers.clone(), tx.clone());
                    let notice = Notice::Page {
                        service: service.to_string(),
                        summary: summary.clone(),
                        incident: None,
                    };
                    tokio::spawn(async move {
                        for d in notifiers.send(&notice).await {
                            if let Some(error) = d.error {
                                let _ = tx
                                    .send(Msg::EffectFailed {
                                        what: format!("page via {}", d.channel),
                                        error,
                                    })
                                    .await;
                            }
                        }
                    });
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
