//! TLS configurations for the node's two QUIC endpoints, from a [`NodeIdentity`]:
//!
//! - **Cluster** (ALPN [`CLUSTER_ALPN`]): mutual TLS 1.3. Every node holds a certificate issued by
//!   the cluster CA and trusts only that CA, in both directions. Nodes dial each other with the
//!   server name [`CLUSTER_SERVER_NAME`], which every node certificate carries.
//! - **MCP** (ALPN [`MCP_ALPN`]): TLS 1.3 with the same node certificate and no client
//!   authentication; the client trusts the cluster CA ([`McpTrust`]).
//!
//! Every configuration is built with an explicit ring [`CryptoProvider`]: ractor_cluster also
//! compiles aws-lc-rs in, so rustls cannot pick a process default on its own.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::pki::{NodeIdentity, TlsError};

/// ALPN of the node-to-node endpoint.
pub const CLUSTER_ALPN: &[u8] = b"erlmcp-cluster";
/// ALPN of MCP over QUIC (one bidirectional stream per session, NDJSON).
pub const MCP_ALPN: &[u8] = b"mcp";
/// DNS SAN every node certificate carries; node-to-node dials verify against it.
pub const CLUSTER_SERVER_NAME: &str = "erlmcp.cluster";

/// quinn server config for the cluster endpoint: ALPN erlmcp-cluster, TLS 1.3 only, REQUIRES a
/// client certificate chaining to the CA, the given transport config.
pub fn cluster_server_config(
    id: &NodeIdentity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&id.ca)?), provider.clone())
            .build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![CLUSTER_ALPN.to_vec()];
    let mut cfg = quic_server(tls)?;
    cfg.transport_config(transport);
    Ok(cfg)
}

/// quinn client config for dialing peers: trusts only the CA, presents this node's chain
/// (client auth), ALPN erlmcp-cluster; dial with server name CLUSTER_SERVER_NAME.
pub fn cluster_client_config(
    id: &NodeIdentity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(&id.ca)?)
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![CLUSTER_ALPN.to_vec()];
    let mut cfg = quic_client(tls)?;
    cfg.transport_config(transport);
    Ok(cfg)
}

/// MCP-over-QUIC server config: ALPN mcp, this node's chain, no client auth.
pub fn mcp_server_config(id: &NodeIdentity) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![MCP_ALPN.to_vec()];
    quic_server(tls)
}

/// How an MCP client trusts the server.
#[derive(Debug, Clone)]
pub enum McpTrust {
    /// Trust these CA certificates (the cluster's `ca.pem`, or [`dev_ca_cert`]).
    Ca(Vec<CertificateDer<'static>>),
    /// Trust any server certificate (the handshake signature is still checked). For tests and
    /// debugging only: anyone on the path can impersonate the node.
    Insecure,
}

/// MCP-over-QUIC client config: ALPN mcp, TLS 1.3, the server verified as `trust` says; no
/// client certificate.
pub fn mcp_client_config(trust: McpTrust) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut tls = match trust {
        McpTrust::Ca(certs) => builder
            .with_root_certificates(roots(&certs)?)
            .with_no_client_auth(),
        McpTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_no_client_auth(),
    };
    tls.alpn_protocols = vec![MCP_ALPN.to_vec()];
    quic_client(tls)
}

/// The ring provider, explicitly (see the module documentation).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn roots(certs: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c.clone())?;
    }
    Ok(roots)
}

fn quic_server(tls: rustls::ServerConfig) -> Result<quinn::ServerConfig, TlsError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

pub(crate) fn quic_client(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// [`McpTrust::Insecure`]: accepts any certificate, but still checks that the server holds its
/// key (the handshake signature), with the provider's algorithms.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
