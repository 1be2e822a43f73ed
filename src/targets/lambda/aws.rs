//! The Lambda API through the official SDK: one client per `[[lambda]]` entry, the
//! read of an alias (alias, versions, tags), and the two writes a revert makes.
//! Every error names the function and the alias and says what to do.

use std::collections::{BTreeMap, HashMap};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use aws_sdk_lambda::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::{code_of, parse_known_bad, KNOWN_BAD_TAG};
use crate::config::lambda::LambdaConfig;
use crate::targets::alias::{Alias, Version};
use crate::targets::{TargetError, TargetKind};

/// A client for the entry: its region and endpoint, the usual credential chain, and
/// the entry's CA beside the system's roots.
pub async fn client(cfg: &LambdaConfig) -> Result<Client, String> {
    let mut trust = tls::TrustStore::default();
    if let Some(ca) = &cfg.ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            format!(
                "[[lambda]] function {:?}: ca_file {}: {e}",
                cfg.function,
                ca.display()
            )
        })?;
        trust = trust.with_pem_certificate(pem);
    }
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .map_err(|e| format!("[[lambda]] function {:?}: TLS: {e}", cfg.function))?,
        )
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = &cfg.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &cfg.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if cfg.unsigned {
        // The SDK signs every request; a placeholder identity makes a signature that
        // only a server checking none (the simulator) accepts.
        let placeholder = aws_sdk_lambda::config::Credentials::new(
            "unsigned",
            "unsigned",
            None,
            None,
            "backout.toml unsigned = true",
        );
        loader = loader.credentials_provider(placeholder);
    }
    Ok(Client::new(&loader.load().await))
}

/// Sorts an SDK error and words it with the entry it was about.
fn error<E>(cfg: &LambdaConfig, call: &str, e: SdkError<E>) -> TargetError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let what = format!("Lambda {call} for {}:{}", cfg.function, cfg.alias);
    let code = e.code().unwrap_or_default().to_string();
    let detail = DisplayErrorContext(&e).to_string();
    match code.as_str() {
        "ResourceNotFoundException" => TargetError::NotFound(format!(
            "{what}: not found ({}); check `function` and `alias` in [[lambda]] and the region",
            e.message().unwrap_or("no such function or alias")
        )),
        "AccessDeniedException" | "AccessDeniedExceptionException" | "UnrecognizedClientException" => {
            TargetError::Forbidden(format!(
                "{what}: refused ({}); the credentials need lambda:GetAlias, ListVersionsByFunction, ListTags, TagResource and UpdateAlias",
                e.message().unwrap_or(&code)
            ))
        }
        "PreconditionFailedException" => TargetError::Conflict(format!(
            "{what}: the alias changed since it was read"
        )),
        _ => TargetError::Other(format!("{what}: {detail}")),
    }
}

/// One read of the alias: the alias, every published version, and the function's tags.
pub async fn read(client: &Client, cfg: &LambdaConfig) -> Result<Alias, TargetError> {
    let alias = client
        .get_alias()
        .function_name(&cfg.function)
        .name(&cfg.alias)
        .send()
        .await
        .map_err(|e| error(cfg, "GetAlias", e))?;
    let mut versions = Vec::new();
    let mut function_arn = String::new();
    let mut pages = client
        .list_versions_by_function()
        .function_name(&cfg.function)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| error(cfg, "ListVersionsByFunction", e))?;
        for v in page.versions() {
            let Some(number) = v.version().and_then(|n| n.parse::<u64>().ok()) else {
                if let Some(arn) = v.function_arn() {
                    function_arn = arn.trim_end_matches(":$LATEST").to_string();
                }
                continue; // $LATEST is no revision: an alias cannot be rolled back to it
            };
            versions.push(Version {
                number,
                id: number.to_string(),
                identity: code_of(v.code_sha256().unwrap_or_default()),
                description: v.description().unwrap_or_default().into(),
                created: v.last_modified().and_then(parse_time),
            });
        }
    }
    versions.sort_by_key(|v| v.number);
    if function_arn.is_empty() {
        function_arn = alias
            .alias_arn()
            .and_then(|a| a.rsplit_once(':'))
            .map(|(f, _)| f.to_string())
            .unwrap_or_default();
    }
    let tags = client
        .list_tags()
        .resource(&function_arn)
        .send()
        .await
        .map_err(|e| error(cfg, "ListTags", e))?;
    let known_bad = tags
        .tags()
        .and_then(|t| t.get(KNOWN_BAD_TAG))
        .map(|t| parse_known_bad(t))
        .unwrap_or_default();
    let weights: BTreeMap<String, f64> = alias
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    Ok(Alias {
        kind: TargetKind::LambdaAlias,
        handle: format!("{}:{}", cfg.function, cfg.alias),
        resource: function_arn,
        version: alias.function_version().unwrap_or_default().into(),
        weights,
        instances: None,
        health: None,
        record_text: alias.description().unwrap_or_default().into(),
        revision_id: alias.revision_id().unwrap_or_default().into(),
        versions,
        known_bad,
    })
}

/// Lambda writes times as `2026-12-06T04:44:35.651+0000`; jiff wants the offset's colon.
pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok().or_else(|| {
        let (head, offset) = s.split_at(s.len().checked_sub(5)?);
        let (sign, digits) = offset.split_at(1);
        (matches!(sign, "+" | "-") && digits.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("{head}{sign}{}:{}", &digits[..2], &digits[2..]))
            .and_then(|t| t.parse().ok())
    })
}

/// Sets the function's known-bad tag to `value`.
pub async fn tag_known_bad(
    client: &Client,
    cfg: &LambdaConfig,
    function_arn: &str,
    value: &str,
) -> Result<(), TargetError> {
    client
        .tag_resource()
        .resource(function_arn)
        .tags(KNOWN_BAD_TAG, value)
        .send()
        .await
        .map_err(|e| error(cfg, "TagResource", e))?;
    Ok(())
}

/// Sends every request to `version`, with `description`, if the alias is still at
/// `revision_id`.
pub async fn shift(
    client: &Client,
    cfg: &LambdaConfig,
    version: &str,
    description: &str,
    revision_id: &str,
) -> Result<(), TargetError> {
    let no_split = AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(HashMap::new()))
        .build();
    client
        .update_alias()
        .function_name(&cfg.function)
        .name(&cfg.alias)
        .function_version(version)
        .routing_config(no_split)
        .description(description)
        .revision_id(revision_id)
        .send()
        .await
        .map_err(|e| error(cfg, "UpdateAlias", e))?;
    Ok(())
}
