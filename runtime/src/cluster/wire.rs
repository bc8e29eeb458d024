//! What Membership actors say to each other, bincode-encoded inside ractor_cluster casts and
//! calls (ractor_cluster carries opaque bytes; decoding here returns errors instead of panicking,
//! so a malformed payload from a peer is logged and dropped).

use serde::{Deserialize, Serialize};

/// Largest gossip payload accepted (a member record is well under 1 KiB; 4 MiB is thousands).
pub const MAX_GOSSIP_BYTES: usize = 4 * 1024 * 1024;

/// One member as its peers know it: where to reach it and which life of it this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Node name (unique in the mesh).
    pub name: String,
    /// The cluster address peers dial (its advertised address).
    pub cluster_addr: String,
    /// Its admin API, if it runs one.
    pub admin_addr: Option<String>,
    /// Which life of the node: larger after every restart.
    pub incarnation: u64,
    /// It left the mesh on purpose (graceful shutdown).
    pub left: bool,
}

/// A Membership message between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gossip {
    /// The sender's member list (itself first).
    Members(Vec<MemberRecord>),
    /// The sender is leaving (graceful shutdown): do not redial it.
    Leave {
        /// Its name.
        name: String,
        /// The life that is ending.
        incarnation: u64,
    },
    /// The sender refuses the receiver's node session: the receiver's name belongs to a live
    /// member. Sent just before the sender closes the session.
    Refused(super::membership::NameTaken),
    /// An operator told the sender to forget member `name`'s life `incarnation`
    /// (`erlmcp forget`); the receiver forgets it too unless it is connected to it.
    Forget {
        /// The member.
        name: String,
        /// The life forgotten.
        incarnation: u64,
    },
}

/// A payload that is not a [`Gossip`].
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_GOSSIP_BYTES`].
    #[error("gossip payload of {0} bytes is over the {MAX_GOSSIP_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a valid encoding.
    #[error("malformed gossip payload: {0}")]
    Malformed(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_GOSSIP_BYTES>()
}

/// Encodes a gossip message.
pub fn encode(g: &Gossip) -> Vec<u8> {
    // Encoding plain owned data into a Vec cannot fail; an empty payload decodes as an error.
    bincode::serde::encode_to_vec(g, bincode::config::standard()).unwrap_or_default()
}

/// Decodes a gossip message; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Gossip, WireError> {
    if bytes.len() > MAX_GOSSIP_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (g, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> MemberRecord {
        MemberRecord {
            name: name.into(),
            cluster_addr: "127.0.0.1:7403".into(),
            admin_addr: Some("127.0.0.1:7404".into()),
            incarnation: 42,
            left: false,
        }
    }

    #[test]
    fn gossip_round_trips() {
        for g in [
            Gossip::Members(vec![record("a"), record("b")]),
            Gossip::Leave {
                name: "a".into(),
                incarnation: 7,
            },
            Gossip::Refused(super::super::membership::NameTaken {
                name: "a".into(),
                holder_addr: Some("127.0.0.1:7403".into()),
                holder_incarnation: 9,
            }),
            Gossip::Forget {
                name: "b".into(),
                incarnation: 3,
            },
        ] {
            assert_eq!(decode(&encode(&g)).unwrap(), g);
        }
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_errors_not_panics() {
        let bytes = encode(&Gossip::Members(vec![record("a")]));
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode(&[0xff; 64]).is_err());
        assert!(decode(&[]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(WireError::Malformed(_))));
        // A length prefix claiming a huge vector must not allocate it.
        assert!(decode(&[0, 0xfc, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(matches!(
            decode(&vec![0; MAX_GOSSIP_BYTES + 1]),
            Err(WireError::TooLarge(_))
        ));
    }
}
