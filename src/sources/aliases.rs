//! The versioned aliases (`[[lambda]]`, `[[model]]` and `[[compose]]`), read every few
//! seconds (neither the Lambda API nor MLflow has a watch, and the Docker engine's
//! event stream says nothing of tags): each as the same summary and
//! revisions a Deployment gives. A read that changed nothing is not sent; a failed
//! one is reported as the source's health, never as an empty alias.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::compose::ComposeConfig;
use crate::config::lambda::LambdaConfig;
use crate::config::model::ModelConfig;
use crate::config::Config;
use crate::engine::msg::TargetRead;
use crate::engine::{Msg, ServiceKey, SourceHealth, SourceId};
use crate::targets::{alias, compose, lambda, model};

const EVERY: Duration = Duration::from_secs(5);

/// One alias and the client that reads it.
enum Reader {
    Lambda(Result<aws_sdk_lambda::Client, String>, LambdaConfig),
    Model(Result<reqwest::Client, String>, ModelConfig),
    Compose(Result<compose::engine::Engine, String>, ComposeConfig),
}

impl Reader {
    fn key(&self) -> ServiceKey {
        match self {
            Reader::Lambda(_, c) => ServiceKey::new(&c.namespace, c.service()),
            Reader::Model(_, c) => ServiceKey::new(&c.namespace, c.service()),
            Reader::Compose(_, c) => ServiceKey::new(c.namespace(), c.service()),
        }
    }

    async fn read(&self) -> Result<alias::Alias, String> {
        match self {
            Reader::Lambda(client, cfg) => match client {
                Ok(client) => lambda::aws::read(client, cfg)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            },
            Reader::Model(client, cfg) => match client {
                Ok(http) => model::read(http, cfg).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            },
            Reader::Compose(engine, cfg) => match engine {
                Ok(engine) => compose::engine::read(engine, cfg)
                    .await
                    .map(|r| r.alias)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            },
        }
    }
}

/// The services the configured aliases are listed as.
pub fn keys(config: &Config) -> Vec<ServiceKey> {
    let lambdas = config
        .lambda
        .iter()
        .map(|c| ServiceKey::new(&c.namespace, c.service()));
    let models = config
        .models
        .iter()
        .map(|c| ServiceKey::new(&c.namespace, c.service()));
    let composed = config
        .compose
        .iter()
        .map(|c| ServiceKey::new(c.namespace(), c.service()));
    lambdas.chain(models).chain(composed).collect()
}

pub fn spawn(config: &Config, tx: mpsc::Sender<Msg>) {
    let (lambdas, models) = (config.lambda.clone(), config.models.clone());
    let composed = config.compose.clone();
    if lambdas.is_empty() && models.is_empty() && composed.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut readers = Vec::new();
        for cfg in lambdas {
            readers.push(Reader::Lambda(lambda::aws::client(&cfg).await, cfg));
        }
        for cfg in models {
            readers.push(Reader::Model(model::http(&cfg), cfg));
        }
        for cfg in composed {
            readers.push(Reader::Compose(compose::engine::client(&cfg), cfg));
        }
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Vec<Option<alias::Alias>> = vec![None; readers.len()];
        let mut failures = 0u32;
        loop {
            every.tick().await;
            let mut errors = Vec::new();
            let mut msgs = Vec::new();
            for (i, reader) in readers.iter().enumerate() {
                match reader.read().await {
                    Ok(read) if last[i].as_ref() == Some(&read) => {}
                    Ok(read) => {
                        let key = reader.key();
                        let summary = alias::summary(&read, &key.name);
                        let revisions = alias::revisions(&read);
                        last[i] = Some(read);
                        msgs.push(Msg::Target(TargetRead {
                            service: key,
                            read: Ok((summary, revisions)),
                        }));
                    }
                    Err(e) => {
                        errors.push(e.clone());
                        msgs.push(Msg::Target(TargetRead {
                            service: reader.key(),
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
                    source: SourceId::Aliases,
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
