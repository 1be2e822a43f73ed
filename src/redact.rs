//! URLs as they may be shown: without a password or user name, and without query
//! values (tokens ride there). Everything printed, journaled or paged goes through
//! this; the real URL is used only for the request itself.

/// `raw` with its userinfo and query values replaced by `***`; text that is not a
/// URL comes back unchanged.
pub fn url(raw: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(raw) else {
        return raw.to_string();
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_username("***");
        let _ = parsed.set_password(None);
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, _)| (k.into_owned(), "***".to_string()))
        .collect();
    if !pairs.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_and_query_values_never_show() {
        let shown = super::url("https://alice:hunter2@prom.example:9090/api?token=s3cret&x=1");
        assert!(
            !shown.contains("hunter2") && !shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(
            shown.starts_with("https://***@prom.example:9090/api?token=***"),
            "{shown}"
        );
        assert_eq!(super::url("not a url"), "not a url");
    }
}
