//! The Kubernetes client: kube's own stack (its TLS, auth, headers, timeouts and
//! retries), built through `ClientBuilder`'s public parts so that it talks as kubectl's
//! Go client does:
//! - TCP connections set `TCP_NODELAY`. kube leaves Nagle's algorithm on, and a request
//!   written just after a TLS handshake then waits for the server's delayed ACK: 40–45
//!   ms a fresh connection on a real API server (BENCHMARKS.md, "A rollback on a real
//!   API server").
//! - HTTP/2 is offered in the TLS handshake, so the short requests (lists, reads,
//!   patches) share one connection instead of a TLS handshake each; pings find it dead
//!   as client-go's do. A server that answers with HTTP/1.1 still gets HTTP/1.1. Watches
//!   and followed logs, which stay open, keep a connection each (`stays_open`).

use std::time::Duration;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::ConfigExt;
use kube::Client;
use tower::retry::RetryLayer;
use tower::steer::Steer;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

/// A client for `config`. Behind a proxy it is kube's default builder, whose
/// tunnelling connectors kube does not expose; an exec credential plugin is kube's
/// own auth layer here, as there.
pub fn build(config: kube::Config) -> Result<Client, kube::Error> {
    if config.proxy_url.is_some() {
        return Client::try_from(config);
    }
    let shared = http_client(&config, Versions::Both)?;
    let own = http_client(&config, Versions::Http1)?;
    let by_length = Steer::new([shared, own], |request: &http::Request<_>, _: &[_]| {
        usize::from(stays_open(request))
    });
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
        .service(by_length);
    Ok(Client::new(service, config.default_namespace))
}

/// A request whose answer stays open: a watch, or a followed log.
///
/// Each gets a connection of its own, over HTTP/1.1, as before HTTP/2. hyper's client,
/// unlike Go's, opens no second HTTP/2 connection once the server's limit of streams
/// on one is reached (200 on hyper's server, 250 on Go's, 1,000 on kube-apiserver):
/// a console watching ten kinds in each of many namespaces would leave every later
/// request waiting for one of its watches to end.
fn stays_open<B>(request: &http::Request<B>) -> bool {
    request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "watch=true" || p == "follow=true")
    })
}

#[derive(Clone, Copy)]
enum Versions {
    Both,
    Http1,
}

type HttpClient = hyper_util::client::legacy::Client<
    TimeoutConnector<HttpsConnector<HttpConnector>>,
    kube::client::Body,
>;

/// kube's TLS (its roots, client identity and server name), over TCP with
/// `TCP_NODELAY`, offering `versions` in the handshake, with kube's timeouts.
fn http_client(config: &kube::Config, versions: Versions) -> Result<HttpClient, kube::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => {
            let name = name.clone().try_into().map_err(|e| {
                kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
            })?;
            https.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let https = match versions {
        Versions::Both => https.enable_all_versions().wrap_connector(http),
        Versions::Http1 => https.enable_http1().wrap_connector(http),
    };
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(15))
            .http2_keep_alive_while_idle(true)
            // A list of 20,000 pods is tens of megabytes: in HTTP/2's default 16 KiB
            // frames, thousands of pieces handed over one at a time. At 2,000
            // Deployments the console's first full frame took 2.07 and 2.22 s with
            // them, 1.07 and 0.83 s with 1 MiB frames; a weak showing, as HTTP/1.1 took
            // 0.93–2.10 s in three runs (BENCHMARKS.md, stop 38).
            .http2_max_frame_size(1 << 20)
            .build(connector),
    )
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

    /// Where the server offers HTTP/2, as an API server does, short requests share one
    /// connection (a console's or a rollback's lists cost one TLS handshake, not one
    /// each), and each watch or followed log keeps an HTTP/1.1 connection of its own,
    /// so that no number of them can use up the shared connection's streams.
    #[tokio::test]
    async fn short_requests_share_one_http2_connection_and_each_watch_has_its_own() {
        use std::net::SocketAddr;

        use axum::extract::{ConnectInfo, Request};
        use backout_sim::tls::Pki;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;

        let seen: Arc<Mutex<Vec<(axum::http::Version, SocketAddr)>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().route(
            "/api/v1/namespaces/{name}",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request| {
                    let log = log.clone();
                    async move {
                        log.lock().unwrap().push((request.version(), peer));
                        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}}"#
                    }
                },
            ),
        );
        let pki = Pki::generate([127, 0, 0, 1].into()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let tls = axum_server::tls_rustls::RustlsConfig::from_config(pki.server_config.clone());
        let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
        tokio::spawn(server.serve(app.into_make_service_with_connect_info::<SocketAddr>()));

        let mut config = kube::Config::new(url.parse().unwrap());
        let ca = CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
        config.root_cert = Some(vec![ca.to_vec()]);
        let client = super::build(config).expect("a client");
        let namespaces = Api::<Namespace>::all(client.clone());
        namespaces.get("shop").await.expect("the first answer");
        let rest = futures::future::join_all((0..4).map(|_| namespaces.get("shop"))).await;
        assert!(rest.iter().all(Result::is_ok), "{rest:?}");
        let staying_open = ["watch=true&resourceVersion=1", "follow=true"].map(|query| {
            let request = http::Request::get(format!("/api/v1/namespaces/shop?{query}"));
            client.request_text(request.body(Vec::new()).unwrap())
        });
        for answer in futures::future::join_all(staying_open).await {
            answer.expect("answered");
        }

        let seen = seen.lock().unwrap().clone();
        let (short, open) = seen.split_at(5);
        assert!(
            short.iter().all(|(v, _)| *v == axum::http::Version::HTTP_2),
            "{seen:?}"
        );
        assert!(
            short.iter().all(|(_, peer)| *peer == short[0].1),
            "one connection: {seen:?}"
        );
        assert_eq!(open.len(), 2);
        assert!(
            open.iter().all(|(v, _)| *v == axum::http::Version::HTTP_11),
            "{seen:?}"
        );
        assert!(
            open[0].1 != open[1].1 && open.iter().all(|(_, peer)| *peer != short[0].1),
            "a connection each: {seen:?}"
        );
    }
}
