//! The Kubernetes client: kube's own stack (its TLS, auth, headers, timeouts and
//! retries), built through `ClientBuilder`'s public parts so the TCP connections set
//! `TCP_NODELAY`, as kubectl's Go client does. kube leaves Nagle's algorithm on, and a
//! request written just after a TLS handshake then waits for the server's delayed ACK:
//! 40–45 ms a fresh connection on a real API server (BENCHMARKS.md, "A rollback on a
//! real API server").

use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::ConfigExt;
use kube::Client;
use tower::retry::RetryLayer;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

/// A client for `config`. Behind a proxy it is kube's default builder, whose
/// tunnelling connectors kube does not expose; an exec credential plugin is kube's
/// own auth layer here, as there.
pub fn build(config: kube::Config) -> Result<Client, kube::Error> {
    if config.proxy_url.is_some() {
        return Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then_some(RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        // Each request as a debug span (`BACKOUT_LOG=tower_http=debug`), as kube's
        // stack has; a failed answer is the caller's to word, not an error line here.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::Api;

    /// The stack built here keeps kube's layers: the token from the kubeconfig on
    /// every request, and a 503 retried, as `Client::try_from`'s stack does.
    #[tokio::test]
    async fn the_stack_authenticates_and_retries_as_kubes_own() {
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().route(
            "/api/v1/namespaces/{name}",
            get(move |headers: HeaderMap| {
                let log = log.clone();
                async move {
                    let mut seen = log.lock().unwrap();
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    seen.push(auth);
                    if seen.len() == 1 {
                        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
                    }
                    let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}}"#;
                    (StatusCode::OK, ns.to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let mut config = kube::Config::new(url.parse().unwrap());
        config.auth_info.token = Some("t0ken".to_string().into());
        let client = super::build(config).expect("a client");
        let ns = Api::<Namespace>::all(client)
            .get("shop")
            .await
            .expect("answered after a retry");

        assert_eq!(ns.metadata.name.as_deref(), Some("shop"));
        let seen = seen.lock().unwrap().clone();
        let bearer = Some("Bearer t0ken".to_string());
        assert_eq!(
            seen,
            vec![bearer.clone(), bearer],
            "one 503, one retry, both authenticated"
        );
    }
}
