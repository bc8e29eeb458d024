//! Certificates of a cluster: the cluster CA, node certificates, dev mode, the files of
//! `erlmcp certs init`. The TLS configurations built from them are in [`crate::tls`].
//!
//! Every node holds a certificate issued by the cluster CA and carrying the server name
//! [`CLUSTER_SERVER_NAME`], so an address (or a NAT in front of it) does not have to be in the
//! certificate. Where the identity comes from:
//!
//! - `erlmcp certs init` ([`write_cluster_dir`]) writes a directory with the CA (`ca.pem`,
//!   `ca.key`) and one certificate and key per node (`NAME.pem`, `NAME.key`);
//!   [`NodeIdentity::load`] reads it back.
//! - **Dev mode** ([`NodeIdentity::dev`]): no files. The CA key is derived from the cluster cookie,
//!   so every node started with the same cookie builds the same trust anchor (rustls/webpki match
//!   anchors on subject and public key only, not on the CA certificate's bytes) and trusts the
//!   others; each node certificate is fresh. The cookie is then the only secret: fine on a
//!   laptop, not for production.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::tls::CLUSTER_SERVER_NAME;

/// The CA certificate's file in a cluster directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file in a cluster directory (needed only to issue node certificates).
pub const CA_KEY_FILE: &str = "ca.key";

/// Subject CN prefix of a CA made by `erlmcp certs init` ([`ClusterCa::load`] rebuilds the
/// issuer from it, so it must not change).
const CLUSTER_CA_CN: &str = "erlmcp cluster CA";
/// Subject CN prefix of the dev-mode CA: part of the trust anchor every dev node must agree on.
const DEV_CA_CN: &str = "erlmcp dev CA";
/// Subject O of both CAs.
const CA_ORG: &str = "erlmcp";
/// Domain separation of the dev CA seed: SHA-256(DEV_SEED_LABEL || cookie).
const DEV_SEED_LABEL: &[u8] = b"erlmcp dev CA";
/// PKCS#8 v1 (RFC 8410) header of an Ed25519 private key: the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

const DAY: Duration = Duration::from_secs(86_400);
/// Validity of a cluster CA.
const CA_VALIDITY: Duration = Duration::from_secs(3_650 * 86_400);
/// Validity of a node certificate issued by `erlmcp certs init`.
const NODE_VALIDITY: Duration = Duration::from_secs(1_825 * 86_400);
/// Validity of an ephemeral dev-mode node certificate (made again at every start).
const DEV_NODE_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Certificates start this long before "now": clocks of different hosts disagree a little.
const CLOCK_SKEW: Duration = DAY;

/// What can go wrong with certificates and TLS configurations. Messages name the file or the
/// step; the underlying error is the [`std::error::Error::source`] (print the chain, e.g. with
/// anyhow's `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file the identity needs does not exist.
    #[error("{} not found; create the cluster certificates with `{hint}`", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// The command that creates it.
        hint: String,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("{} is not valid PEM: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A PEM file holds no certificate.
    #[error("{} holds no certificate (expected a PEM \"CERTIFICATE\" section)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file holds no private key.
    #[error("{} holds no private key (expected a PEM \"PRIVATE KEY\" section)", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// `ca.pem` and `ca.key` do not make a CA that can issue node certificates.
    #[error("{}: {reason}", path.display())]
    CaMismatch {
        /// The CA certificate.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A file to write exists already.
    #[error("{} already exists; refusing to overwrite it (use --force to replace it)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory cannot be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A node name cannot name its files.
    #[error(
        "invalid node name {0:?}: it names files NAME.pem and NAME.key, so it must be non-empty, not \"ca\", and contain no '/', '\\' or leading '.'"
    )]
    InvalidName(String),
    /// A subject alternative name is neither a DNS name nor an IP address.
    #[error("invalid subject alternative name {0:?}: expected a DNS name or an IP address")]
    InvalidSan(String),
    /// Generating a key or a certificate failed.
    #[error("cannot generate {what}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// A certificate or key was refused when building a TLS configuration.
    #[error("invalid TLS configuration")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("cannot build the client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The crypto provider lacks what QUIC needs.
    #[error("the TLS configuration cannot serve QUIC")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// This node's TLS identity: the cluster CA (trust anchor) and its own chain + key.
pub struct NodeIdentity {
    /// Trust anchors: the cluster CA certificate(s).
    pub ca: Vec<CertificateDer<'static>>,
    /// This node's certificate, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of `chain[0]`.
    pub key: PrivateKeyDer<'static>,
    /// Whether the CA is the dev-mode CA derived from the cookie.
    pub dev_mode: bool,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        Self {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            dev_mode: self.dev_mode,
        }
    }
}

impl fmt::Debug for NodeIdentity {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("ca", &self.ca.len())
            .field("chain", &self.chain.len())
            .field("key", &"[elided]")
            .field("dev_mode", &self.dev_mode)
            .finish()
    }
}

impl NodeIdentity {
    /// Loads DIR/ca.pem, DIR/<node_name>.pem, DIR/<node_name>.key (layout written by
    /// `erlmcp certs init`); errors name the missing file and suggest
    /// `erlmcp certs init --out DIR --names NAME`.
    pub fn load(dir: &Path, node_name: &str) -> Result<Self, TlsError> {
        check_name(node_name)?;
        let hint = format!(
            "erlmcp certs init --out {} --names {node_name}",
            dir.display()
        );
        let ca_path = dir.join(CA_CERT_FILE);
        let cert_path = dir.join(format!("{node_name}.pem"));
        let key_path = dir.join(format!("{node_name}.key"));
        let ca = certs_from_pem(&ca_path, &read_file(&ca_path, &hint)?)?;
        let chain = certs_from_pem(&cert_path, &read_file(&cert_path, &hint)?)?;
        let key = key_from_pem(&key_path, &read_file(&key_path, &hint)?)?;
        Ok(Self {
            ca,
            chain,
            key,
            dev_mode: false,
        })
    }

    /// An identity from PEM text: the CA certificate(s), this node's chain and its key. `origin`
    /// names the source in errors.
    pub fn from_pem(
        ca_pem: &str,
        chain_pem: &str,
        key_pem: &str,
        origin: &Path,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            ca: certs_from_pem(origin, ca_pem.as_bytes())?,
            chain: certs_from_pem(origin, chain_pem.as_bytes())?,
            key: key_from_pem(origin, key_pem.as_bytes())?,
            dev_mode: false,
        })
    }

    /// Dev mode: an ephemeral CA derived deterministically from the cookie, so every dev node
    /// started with the same cookie trusts the others with no files. The CA key is the Ed25519
    /// key whose seed is SHA-256("erlmcp dev CA" || cookie) and the CA subject is
    /// `CN=erlmcp dev CA <key id>, O=erlmcp`, so both are the same in every process with that
    /// cookie; the node certificate is freshly generated (random key) and signed by it.
    pub fn dev(cookie: &str, node_name: &str) -> Result<Self, TlsError> {
        let ca = DevCa::new(cookie)?;
        let ca_cert = ca
            .params
            .self_signed(&ca.key)
            .map_err(gen_err("the dev CA certificate"))?;
        let issuer = Issuer::from_params(&ca.params, &ca.key);
        let (cert, key) = node_cert(&issuer, node_name, &[], DEV_NODE_VALIDITY)?;
        Ok(Self {
            ca: vec![ca_cert.der().clone()],
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            dev_mode: true,
        })
    }
}

/// The dev-mode CA certificate for `cookie`: what an MCP client trusts to reach dev nodes.
pub fn dev_ca_cert(cookie: &str) -> Result<CertificateDer<'static>, TlsError> {
    let ca = DevCa::new(cookie)?;
    let cert = ca
        .params
        .self_signed(&ca.key)
        .map_err(gen_err("the dev CA certificate"))?;
    Ok(cert.der().clone())
}

/// The dev CA's parameters and its cookie-derived key.
struct DevCa {
    params: CertificateParams,
    key: KeyPair,
}

impl DevCa {
    fn new(cookie: &str) -> Result<Self, TlsError> {
        let mut hash = Sha256::new();
        hash.update(DEV_SEED_LABEL);
        hash.update(cookie.as_bytes());
        let seed = hash.finalize();
        let mut pkcs8 = Vec::with_capacity(ED25519_PKCS8_PREFIX.len() + seed.len());
        pkcs8.extend_from_slice(&ED25519_PKCS8_PREFIX);
        pkcs8.extend_from_slice(&seed);
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8),
            &rcgen::PKCS_ED25519,
        )
        .map_err(gen_err("the dev CA key"))?;
        Ok(Self {
            params: ca_params(DEV_CA_CN, &key, CA_VALIDITY),
            key,
        })
    }
}

/// A cluster CA that can issue node certificates (`erlmcp certs init`).
pub struct ClusterCa {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl fmt::Debug for ClusterCa {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("subject", &self.params.distinguished_name)
            .field("key", &"[elided]")
            .finish()
    }
}

impl ClusterCa {
    /// A new CA: ECDSA P-256, CA:true (no intermediates below it), valid for 10 years.
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(gen_err("the CA key"))?;
        let params = ca_params(CLUSTER_CA_CN, &key, CA_VALIDITY);
        let cert = params
            .self_signed(&key)
            .map_err(gen_err("the CA certificate"))?;
        Ok(Self {
            params,
            key,
            cert_pem: cert.pem(),
        })
    }

    /// Loads DIR/ca.pem and DIR/ca.key, as written by `erlmcp certs init`.
    ///
    /// Issuing needs the CA's subject, which is rebuilt rather than parsed (no X.509 parser
    /// here): the key must belong to the certificate and the subject must be the one
    /// `certs init` writes, otherwise node certificates would not chain to `ca.pem`.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let hint = format!("erlmcp certs init --out {}", dir.display());
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_bytes = read_file(&cert_path, &hint)?;
        let ca_der = certs_from_pem(&cert_path, &cert_bytes)?.remove(0);
        let key_der = key_from_pem(&key_path, &read_file(&key_path, &hint)?)?;
        let key = KeyPair::try_from(&key_der).map_err(|e| TlsError::Pem {
            path: key_path.clone(),
            reason: format!("unsupported private key: {e}"),
        })?;
        let params = ca_params(CLUSTER_CA_CN, &key, CA_VALIDITY);
        let rebuilt = params
            .self_signed(&key)
            .map_err(gen_err("the CA certificate"))?;
        let (subject, spki) = anchor_of(&cert_path, &ca_der)?;
        let (want_subject, want_spki) = anchor_of(&cert_path, rebuilt.der())?;
        if spki != want_spki {
            return Err(TlsError::CaMismatch {
                path: cert_path,
                reason: format!("its public key does not match {}", key_path.display()),
            });
        }
        if subject != want_subject {
            return Err(TlsError::CaMismatch {
                path: cert_path,
                reason: format!(
                    "not a CA made by `erlmcp certs init` (its subject is not \"CN={CLUSTER_CA_CN} <key id>, O={CA_ORG}\")"
                ),
            });
        }
        let cert_pem = String::from_utf8_lossy(&cert_bytes).into_owned();
        Ok(Self {
            params,
            key,
            cert_pem,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A node certificate for `node_name`: SANs CLUSTER_SERVER_NAME, node_name (if a valid DNS
    /// name), "localhost", 127.0.0.1, ::1, plus `extra_sans` (DNS names or IPs); EKU
    /// serverAuth+clientAuth. Returns (cert_pem, key_pem).
    pub fn issue_node(
        &self,
        node_name: &str,
        extra_sans: &[String],
    ) -> Result<(String, String), TlsError> {
        let issuer = Issuer::from_params(&self.params, &self.key);
        let (cert, key) = node_cert(&issuer, node_name, extra_sans, NODE_VALIDITY)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Writes a cluster directory: ca.pem, ca.key (0600), NAME.pem, NAME.key (0600) per name.
/// Refuses to overwrite existing files unless `force`. Returns the paths written.
///
/// When `ca.pem` and `ca.key` exist already (and not `force`), that CA is kept and issues the
/// new node certificates: this is how a node is added to an existing cluster.
pub fn write_cluster_dir(
    dir: &Path,
    names: &[String],
    extra_sans: &[String],
    force: bool,
) -> Result<Vec<PathBuf>, TlsError> {
    for name in names {
        check_name(name)?;
    }
    for san in extra_sans {
        san_type(san)?;
    }
    let ca_cert = dir.join(CA_CERT_FILE);
    let ca_key = dir.join(CA_KEY_FILE);
    let node_files: Vec<(PathBuf, PathBuf)> = names
        .iter()
        .map(|n| (dir.join(format!("{n}.pem")), dir.join(format!("{n}.key"))))
        .collect();
    let reuse_ca = !force && ca_cert.exists() && ca_key.exists();
    if !force {
        // Check everything first: a refused run writes nothing.
        let mut targets: Vec<&PathBuf> = node_files.iter().flat_map(|(c, k)| [c, k]).collect();
        if !reuse_ca {
            targets.extend([&ca_cert, &ca_key]);
        }
        if let Some(existing) = targets.into_iter().find(|p| p.exists()) {
            return Err(TlsError::Exists {
                path: existing.clone(),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = if reuse_ca {
        ClusterCa::load(dir)?
    } else {
        ClusterCa::generate()?
    };
    let mut written = Vec::new();
    if !reuse_ca {
        write_file(&ca_cert, ca.cert_pem().as_bytes(), false, force)?;
        written.push(ca_cert);
        write_file(&ca_key, ca.key_pem().as_bytes(), true, force)?;
        written.push(ca_key);
    }
    for (name, (cert_path, key_path)) in names.iter().zip(node_files) {
        let (cert, key) = ca.issue_node(name, extra_sans)?;
        write_file(&cert_path, cert.as_bytes(), false, force)?;
        written.push(cert_path);
        write_file(&key_path, key.as_bytes(), true, force)?;
        written.push(key_path);
    }
    Ok(written)
}

/// Reads a PEM file of certificates (for --ca).
pub fn read_certs_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    certs_from_pem(path, &bytes)
}

/// "Now" in rcgen's time type, which this crate cannot name (the `time` crate is rcgen's).
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

fn set_validity(p: &mut CertificateParams, validity: Duration) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = since_epoch();
    p.not_before = epoch + now.saturating_sub(CLOCK_SKEW);
    p.not_after = epoch + now + validity;
}

/// A CA's parameters. The subject is `CN=<cn> <key id>, O=erlmcp`, where the key id is a
/// fingerprint of the CA's public key: a function of the key alone, so [`ClusterCa::load`] can
/// rebuild it and every dev node derives the same one from the cookie; and distinct for distinct
/// CAs, so a certificate from another CA is reported as "unknown issuer" rather than as a bad
/// signature (webpki picks the anchor by subject, then checks the signature).
fn ca_params(cn: &str, key: &KeyPair, validity: Duration) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let id = Sha256::digest(key.public_key_raw());
    let id: String = id[..6].iter().map(|b| format!("{b:02x}")).collect();
    dn.push(DnType::CommonName, format!("{cn} {id}"));
    dn.push(DnType::OrganizationName, CA_ORG);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut p, validity);
    p
}

/// A node certificate (fresh ECDSA P-256 key) signed by `issuer`.
fn node_cert(
    issuer: &Issuer<'_, &KeyPair>,
    node_name: &str,
    extra_sans: &[String],
    validity: Duration,
) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
    let mut sans = vec![SanType::DnsName(ia5(CLUSTER_SERVER_NAME)?)];
    if node_name != CLUSTER_SERVER_NAME && is_dns_name(node_name) {
        sans.push(SanType::DnsName(ia5(node_name)?));
    }
    if node_name != "localhost" {
        sans.push(SanType::DnsName(ia5("localhost")?));
    }
    sans.push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    sans.push(SanType::IpAddress(IpAddr::from([
        0u16, 0, 0, 0, 0, 0, 0, 1,
    ])));
    for s in extra_sans {
        let san = san_type(s)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_name);
    dn.push(DnType::OrganizationName, CA_ORG);
    p.distinguished_name = dn;
    p.subject_alt_names = sans;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    set_validity(&mut p, validity);
    let key = KeyPair::generate().map_err(gen_err("a node key"))?;
    let cert = p
        .signed_by(&key, issuer)
        .map_err(gen_err("a node certificate"))?;
    Ok((cert, key))
}

fn is_dns_name(s: &str) -> bool {
    s.parse::<IpAddr>().is_err() && DnsName::try_from(s).is_ok()
}

fn ia5(s: &str) -> Result<rcgen::string::Ia5String, TlsError> {
    rcgen::string::Ia5String::try_from(s).map_err(|_| TlsError::InvalidSan(s.to_string()))
}

/// A SAN from text: an IP address (IPv6 may be in brackets) or a DNS name.
fn san_type(s: &str) -> Result<SanType, TlsError> {
    let trimmed = s.trim();
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(trimmed);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if DnsName::try_from(trimmed).is_ok() {
        return Ok(SanType::DnsName(ia5(trimmed)?));
    }
    Err(TlsError::InvalidSan(s.to_string()))
}

/// Node names become file names (`NAME.pem`, `NAME.key`) next to `ca.pem`.
fn check_name(name: &str) -> Result<(), TlsError> {
    let bad = name.is_empty()
        || name == "ca"
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(TlsError::InvalidName(name.to_string()));
    }
    Ok(())
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> TlsError {
    move |source| TlsError::Generate { what, source }
}

fn read_file(path: &Path, hint: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            TlsError::Missing {
                path: path.to_path_buf(),
                hint: hint.to_string(),
            }
        } else {
            TlsError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn certs_from_pem(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn key_from_pem(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        e => TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

/// The (subject, SPKI) a trust anchor made from `cert` matches on.
fn anchor_of(path: &Path, cert: &CertificateDer<'_>) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let mut store = rustls::RootCertStore::empty();
    store.add(cert.clone()).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        reason: format!("not a usable certificate: {e}"),
    })?;
    let anchor = store.roots.first().ok_or_else(|| TlsError::NoCertificate {
        path: path.to_path_buf(),
    })?;
    Ok((
        anchor.subject.as_ref().to_vec(),
        anchor.subject_public_key_info.as_ref().to_vec(),
    ))
}

/// Writes a file: never over an existing one unless `force`; keys (`secret`) readable by the
/// owner only, also when an existing file is replaced.
fn write_file(path: &Path, contents: &[u8], secret: bool, force: bool) -> Result<(), TlsError> {
    let werr = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            werr(e)
        }
    })?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(werr)?;
    }
    file.write_all(contents).map_err(werr)?;
    file.sync_all().map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::*;

    use std::sync::Arc;

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Bound of every handshake in these tests (loopback; generous for a busy machine).
    const WAIT: Duration = Duration::from_secs(20);

    fn init() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    fn transport() -> Arc<quinn::TransportConfig> {
        Arc::new(quinn::TransportConfig::default())
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "erlmcp-tls-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            Self(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A node identity issued by `ca` (trusting `trust`, normally the same CA).
    fn issued(ca: &ClusterCa, trust: &ClusterCa, name: &str) -> NodeIdentity {
        let (cert, key) = ca.issue_node(name, &[]).expect("issue");
        NodeIdentity::from_pem(&trust.cert_pem(), &cert, &key, Path::new("test")).expect("pem")
    }

    /// One QUIC handshake plus a ping/pong on a bidirectional stream between a server and a
    /// client on loopback. Returns what each side saw: `Ok` or its error.
    async fn exchange(
        server: quinn::ServerConfig,
        client: quinn::ClientConfig,
        server_name: &str,
    ) -> (Result<(), String>, Result<(), String>) {
        init();
        let server_ep =
            quinn::Endpoint::server(server, "127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = server_ep.local_addr().expect("local addr");
        let serve = async {
            let incoming = server_ep
                .accept()
                .await
                .ok_or_else(|| "endpoint closed".to_string())?;
            let conn = incoming.await.map_err(|e| e.to_string())?;
            let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
            let got = recv.read_to_end(64).await.map_err(|e| e.to_string())?;
            if got != b"ping" {
                return Err(format!("server read {got:?}"));
            }
            send.write_all(b"pong").await.map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            // The client closes once it has read the answer.
            let _ = conn.closed().await;
            Ok::<(), String>(())
        };
        let mut client_ep =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind client");
        client_ep.set_default_client_config(client);
        let dial = async {
            let conn = client_ep
                .connect(addr, server_name)
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let talk = async {
                let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
                send.write_all(b"ping").await.map_err(|e| e.to_string())?;
                send.finish().map_err(|e| e.to_string())?;
                let got = recv.read_to_end(64).await.map_err(|e| e.to_string())?;
                if got != b"pong" {
                    return Err(format!("client read {got:?}"));
                }
                Ok(())
            };
            let r = talk.await;
            conn.close(0u32.into(), b"done");
            r
        };
        let both = async {
            // The server side ends when the client gives up too (its error closes the
            // connection), except when it never got a connection at all.
            let (s, c) = tokio::join!(
                async {
                    tokio::select! {
                        r = serve => r,
                        _ = tokio::time::sleep(WAIT) => Err("server: no outcome".to_string()),
                    }
                },
                dial
            );
            (s, c)
        };
        let out = tokio::time::timeout(WAIT * 2, both)
            .await
            .expect("handshake test bounded");
        client_ep.close(0u32.into(), b"");
        server_ep.close(0u32.into(), b"");
        out
    }

    #[tokio::test]
    async fn dev_identities_from_the_same_cookie_trust_each_other() {
        let a = NodeIdentity::dev("secret", "a").expect("dev a");
        let b = NodeIdentity::dev("secret", "b").expect("dev b");
        assert!(a.dev_mode && b.dev_mode);
        // Two node keys, and each side only knows its own CA certificate.
        assert_ne!(a.chain[0], b.chain[0]);
        let (s, c) = exchange(
            cluster_server_config(&a, transport()).expect("server"),
            cluster_client_config(&b, transport()).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        assert_eq!(s, Ok(()), "server side");
        assert_eq!(c, Ok(()), "client side");
    }

    #[tokio::test]
    async fn dev_identities_from_different_cookies_are_refused() {
        let a = NodeIdentity::dev("secret", "a").expect("dev a");
        let b = NodeIdentity::dev("other secret", "b").expect("dev b");
        let (s, c) = exchange(
            cluster_server_config(&a, transport()).expect("server"),
            cluster_client_config(&b, transport()).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        let c = c.expect_err("the client must refuse the server");
        assert!(c.contains("UnknownIssuer"), "{c}");
        assert!(s.is_err(), "the server saw a failed handshake: {s:?}");
    }

    #[tokio::test]
    async fn nodes_of_one_cluster_ca_handshake() {
        let ca = ClusterCa::generate().expect("ca");
        let a = issued(&ca, &ca, "node0");
        let b = issued(&ca, &ca, "node1");
        let (s, c) = exchange(
            cluster_server_config(&a, transport()).expect("server"),
            cluster_client_config(&b, transport()).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        assert_eq!(s, Ok(()));
        assert_eq!(c, Ok(()));
    }

    #[tokio::test]
    async fn the_server_refuses_a_client_certificate_from_another_ca() {
        let ca = ClusterCa::generate().expect("ca");
        let other = ClusterCa::generate().expect("other ca");
        let server = issued(&ca, &ca, "node0");
        // Trusts the right CA (so it accepts the server) but holds a foreign certificate.
        let intruder = issued(&other, &ca, "node1");
        let (s, c) = exchange(
            cluster_server_config(&server, transport()).expect("server"),
            cluster_client_config(&intruder, transport()).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        let s = s.expect_err("the server must refuse the client");
        assert!(s.contains("UnknownIssuer"), "{s}");
        assert!(c.is_err(), "the client cannot talk: {c:?}");
    }

    #[tokio::test]
    async fn the_client_refuses_a_server_certificate_from_another_ca() {
        let ca = ClusterCa::generate().expect("ca");
        let other = ClusterCa::generate().expect("other ca");
        let impostor = issued(&other, &ca, "node0");
        let client = issued(&ca, &ca, "node1");
        let (s, c) = exchange(
            cluster_server_config(&impostor, transport()).expect("server"),
            cluster_client_config(&client, transport()).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        let c = c.expect_err("the client must refuse the server");
        assert!(c.contains("UnknownIssuer"), "{c}");
        assert!(s.is_err(), "{s:?}");
    }

    #[tokio::test]
    async fn the_cluster_endpoint_refuses_a_client_without_a_certificate() {
        let ca = ClusterCa::generate().expect("ca");
        let server = issued(&ca, &ca, "node0");
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(roots(&server.ca).expect("roots"))
            .with_no_client_auth();
        tls.alpn_protocols = vec![CLUSTER_ALPN.to_vec()];
        let (s, c) = exchange(
            cluster_server_config(&server, transport()).expect("server"),
            quic_client(tls).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        let s = s.expect_err("the server must refuse an anonymous client");
        assert!(s.contains("peer sent no certificates"), "{s}");
        assert!(c.is_err(), "{c:?}");
    }

    #[tokio::test]
    async fn mcp_clients_trust_the_ca_or_nothing_unless_insecure() {
        let ca = ClusterCa::generate().expect("ca");
        let node = issued(&ca, &ca, "node0");
        // Trusting the CA, with the IP SAN every node certificate has.
        let (s, c) = exchange(
            mcp_server_config(&node).expect("server"),
            mcp_client_config(McpTrust::Ca(node.ca.clone())).expect("client"),
            "127.0.0.1",
        )
        .await;
        assert_eq!((s, c), (Ok(()), Ok(())));
        // Another CA: refused.
        let other = ClusterCa::generate().expect("other");
        let other_ca = read_pem_certs(&other.cert_pem());
        let (_, c) = exchange(
            mcp_server_config(&node).expect("server"),
            mcp_client_config(McpTrust::Ca(other_ca)).expect("client"),
            "localhost",
        )
        .await;
        let c = c.expect_err("refused");
        assert!(c.contains("UnknownIssuer"), "{c}");
        // Insecure: anything goes.
        let (s, c) = exchange(
            mcp_server_config(&node).expect("server"),
            mcp_client_config(McpTrust::Insecure).expect("client"),
            "whatever.example",
        )
        .await;
        assert_eq!((s, c), (Ok(()), Ok(())));
        // The dev CA of a cookie is what MCP clients of dev nodes trust.
        let dev = NodeIdentity::dev("c", "n").expect("dev");
        let (s, c) = exchange(
            mcp_server_config(&dev).expect("server"),
            mcp_client_config(McpTrust::Ca(vec![dev_ca_cert("c").expect("ca")])).expect("client"),
            "::1",
        )
        .await;
        assert_eq!((s, c), (Ok(()), Ok(())));
    }

    #[tokio::test]
    async fn an_mcp_client_cannot_reach_the_cluster_endpoint() {
        let ca = ClusterCa::generate().expect("ca");
        let node = issued(&ca, &ca, "node0");
        let (s, c) = exchange(
            cluster_server_config(&node, transport()).expect("server"),
            mcp_client_config(McpTrust::Ca(node.ca.clone())).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        assert!(s.is_err() && c.is_err(), "{s:?} {c:?}");
    }

    fn read_pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
        certs_from_pem(Path::new("test"), pem.as_bytes()).expect("certs")
    }

    #[test]
    fn write_cluster_dir_refuses_to_overwrite_and_keeps_keys_private() {
        init();
        let dir = TempDir::new();
        let names = vec!["node0".to_string(), "node1".to_string()];
        let written =
            write_cluster_dir(&dir.0, &names, &["10.1.2.3".into()], false).expect("write");
        let file_names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            file_names,
            [
                "ca.pem",
                "ca.key",
                "node0.pem",
                "node0.key",
                "node1.pem",
                "node1.key"
            ]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in ["ca.key", "node0.key", "node1.key"] {
                let mode = std::fs::metadata(dir.0.join(key))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{key}");
            }
        }
        let ca_before = std::fs::read(dir.0.join("ca.pem")).unwrap();
        let e = write_cluster_dir(&dir.0, &names, &[], false).expect_err("refused");
        assert!(matches!(e, TlsError::Exists { .. }), "{e}");
        assert!(e.to_string().contains("node0.pem"), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read(dir.0.join("ca.pem")).unwrap(), ca_before);

        // A new name is issued by the existing CA.
        let added = write_cluster_dir(&dir.0, &["node2".to_string()], &[], false).expect("add");
        assert_eq!(added.len(), 2, "{added:?}");
        assert_eq!(std::fs::read(dir.0.join("ca.pem")).unwrap(), ca_before);
        let n0 = NodeIdentity::load(&dir.0, "node0").expect("load node0");
        let n2 = NodeIdentity::load(&dir.0, "node2").expect("load node2");
        assert_eq!(n0.ca, n2.ca);
        assert!(!n0.dev_mode);

        // --force: a new CA.
        let again = write_cluster_dir(&dir.0, &names, &[], true).expect("force");
        assert_eq!(again.len(), 6);
        assert_ne!(std::fs::read(dir.0.join("ca.pem")).unwrap(), ca_before);
    }

    #[tokio::test]
    async fn loaded_identities_handshake_and_refuse_other_clusters() {
        let dir = TempDir::new();
        let other = TempDir::new();
        let names = vec!["node0".to_string(), "node1".to_string()];
        write_cluster_dir(&dir.0, &names, &[], false).expect("write");
        write_cluster_dir(&other.0, &names, &[], false).expect("write other");
        let a = NodeIdentity::load(&dir.0, "node0").expect("node0");
        let b = NodeIdentity::load(&dir.0, "node1").expect("node1");
        let (s, c) = exchange(
            cluster_server_config(&a, transport()).expect("server"),
            cluster_client_config(&b.clone(), transport()).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        assert_eq!((s, c), (Ok(()), Ok(())));
        let stranger = NodeIdentity::load(&other.0, "node1").expect("other node1");
        let (s, c) = exchange(
            cluster_server_config(&a, transport()).expect("server"),
            cluster_client_config(&stranger, transport()).expect("client"),
            CLUSTER_SERVER_NAME,
        )
        .await;
        assert!(s.is_err() && c.is_err(), "{s:?} {c:?}");
    }

    #[test]
    fn load_names_the_missing_file_and_the_command_that_makes_it() {
        let dir = TempDir::new();
        let e = NodeIdentity::load(&dir.0, "node0").expect_err("nothing there");
        let text = e.to_string();
        assert!(
            text.contains(&dir.0.join("ca.pem").display().to_string()),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "erlmcp certs init --out {} --names node0",
                dir.0.display()
            )),
            "{text}"
        );
        write_cluster_dir(&dir.0, &["node0".to_string()], &[], false).expect("write");
        let e = NodeIdentity::load(&dir.0, "node7").expect_err("no node7");
        assert!(e.to_string().contains("node7.pem"), "{e}");
        std::fs::write(dir.0.join("node0.key"), "not a key\n").unwrap();
        let e = NodeIdentity::load(&dir.0, "node0").expect_err("bad key");
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        assert!(e.to_string().contains("node0.key"), "{e}");
        let e = NodeIdentity::load(&dir.0, "../x").expect_err("bad name");
        assert!(matches!(e, TlsError::InvalidName(_)), "{e}");
    }

    #[test]
    fn cluster_ca_load_round_trips_and_checks_the_key() {
        init();
        let dir = TempDir::new();
        write_cluster_dir(&dir.0, &[], &[], false).expect("write");
        let ca = ClusterCa::load(&dir.0).expect("load");
        assert_eq!(
            ca.cert_pem(),
            std::fs::read_to_string(dir.0.join("ca.pem")).unwrap()
        );
        // A key of another CA is refused, naming the files.
        let other = ClusterCa::generate().expect("other");
        std::fs::write(dir.0.join("ca.key"), other.key_pem()).unwrap();
        let e = ClusterCa::load(&dir.0).expect_err("mismatch");
        assert!(matches!(e, TlsError::CaMismatch { .. }), "{e}");
        assert!(e.to_string().contains("ca.key"), "{e}");
    }

    #[test]
    fn sans_and_names_are_validated() {
        let ca = ClusterCa::generate().expect("ca");
        assert!(
            ca.issue_node("n", &["[::2]".into(), "a.example".into()])
                .is_ok()
        );
        let e = ca
            .issue_node("n", &["not a name!".into()])
            .expect_err("bad san");
        assert!(matches!(e, TlsError::InvalidSan(_)), "{e}");
        // Names that are not DNS names are fine (no SAN for them).
        assert!(ca.issue_node("test@127.0.0.1", &[]).is_ok());
        for bad in ["", "ca", "a/b", ".hidden"] {
            assert!(
                matches!(check_name(bad), Err(TlsError::InvalidName(_))),
                "{bad:?}"
            );
        }
        let dir = TempDir::new();
        assert!(matches!(
            write_cluster_dir(&dir.0, &["ca".into()], &[], false),
            Err(TlsError::InvalidName(_))
        ));
        assert!(!dir.0.exists(), "a refused run writes nothing");
    }

    #[test]
    fn read_certs_pem_reads_a_bundle_and_names_bad_files() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let a = ClusterCa::generate().expect("a");
        let b = ClusterCa::generate().expect("b");
        let path = dir.0.join("bundle.pem");
        std::fs::write(&path, a.cert_pem() + &b.cert_pem()).unwrap();
        assert_eq!(read_certs_pem(&path).expect("bundle").len(), 2);
        let empty = dir.0.join("empty.pem");
        std::fs::write(&empty, "nothing\n").unwrap();
        let e = read_certs_pem(&empty).expect_err("empty");
        assert!(e.to_string().contains("empty.pem"), "{e}");
        let e = read_certs_pem(&dir.0.join("missing.pem")).expect_err("missing");
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[test]
    fn the_dev_ca_is_the_same_anchor_in_every_process() {
        let a = dev_ca_cert("k").expect("a");
        let b = dev_ca_cert("k").expect("b");
        let c = dev_ca_cert("other").expect("c");
        let anchor = |c: &CertificateDer<'_>| anchor_of(Path::new("t"), c).expect("anchor");
        assert_eq!(anchor(&a), anchor(&b));
        assert_ne!(anchor(&a).0, anchor(&c).0, "subject names the key");
        assert_ne!(anchor(&a).1, anchor(&c).1, "different key");
    }
}
