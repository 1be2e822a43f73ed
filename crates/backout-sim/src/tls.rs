//! A throwaway certificate authority and serving certificate, made at start-up.
//! kubectl (client-go) sends bearer tokens only over TLS, so the simulator serves
//! HTTPS like a real API server and hands its CA to clients in the kubeconfig.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

#[derive(Debug)]
pub struct Pki {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl Pki {
    /// A CA and a certificate for `localhost`, `127.0.0.1` and the listen address.
    pub fn generate(listen_ip: IpAddr) -> anyhow::Result<Pki> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "backout simulated cluster CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        if !listen_ip.is_unspecified() && !listen_ip.is_loopback() {
            names.push(listen_ip.to_string());
        }
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "backout-sim");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;

        let chain = vec![cert.der().clone(), ca.der().clone()];
        let private = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| anyhow::anyhow!("the generated key is unusable: {e}"))?;
        let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .context("the generated serving certificate")?;
        // As a real API server: HTTP/2 for a client that offers it (kubectl's Go client
        // does, for its requests and watches alike; backout does for its short
        // requests), HTTP/1.1 with chunked watches for one that does not.
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Pki {
            ca_pem: ca.pem(),
            server_config: Arc::new(server_config),
        })
    }
}
