//! The HTTP request headers the 2026-07-28 path validates (`basic/transports/streamable-http.mdx`
//! §Request Metadata): `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and the
//! `Mcp-Param-{Name}` headers of tool parameters marked `x-mcp-header`, with the strict
//! `=?base64?…?=` value encoding.

use base64::Engine;
use serde_json::Value;

/// `MCP-Protocol-Version`.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Method`.
pub const METHOD: &str = "mcp-method";
/// `Mcp-Name`.
pub const NAME: &str = "mcp-name";
/// Prefix of the `Mcp-Param-{Name}` headers.
pub const PARAM_PREFIX: &str = "mcp-param-";

/// Why a header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header was sent more than once.
    #[error("the {0} header appears more than once")]
    Repeated(String),
    /// The value has bytes outside visible ASCII, space and tab.
    #[error("the {0} header value contains invalid characters")]
    InvalidCharacters(String),
    /// A `=?base64?…?=` value that is not canonical standard Base64 of UTF-8 text.
    #[error("the {0} header value is not valid Base64 (`=?base64?…?=`)")]
    InvalidBase64(String),
}

/// The MCP headers of one POST, as the HTTP layer received them. Names are matched
/// case-insensitively; values are trimmed of surrounding spaces and tabs and compared
/// case-sensitively. Other headers are not kept.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders {
    entries: Vec<(String, Vec<u8>)>,
    /// The authenticated principal (when auth is on): `requestState` is bound to it.
    pub principal: Option<String>,
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
}

impl RequestHeaders {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The MCP headers among `pairs` (name, raw value), e.g. from
    /// `req.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes()))`.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut h = Self::new();
        for (k, v) in pairs {
            h.insert(k.as_ref(), v.as_ref());
        }
        h
    }

    /// Adds one header (ignored unless it is an MCP header).
    pub fn insert(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let lower = name.to_ascii_lowercase();
        if lower == PROTOCOL_VERSION
            || lower == METHOD
            || lower == NAME
            || lower.starts_with(PARAM_PREFIX)
        {
            self.entries
                .push((lower, trim_ows(value.as_ref()).to_vec()));
        }
        self
    }

    /// A header's value by (any-case) name: `None` when absent.
    pub fn get(&self, name: &str) -> Option<Result<&str, HeaderError>> {
        let lower = name.to_ascii_lowercase();
        let mut found = self.entries.iter().filter(|(k, _)| *k == lower);
        let (_, v) = found.next()?;
        if found.next().is_some() {
            return Some(Err(HeaderError::Repeated(display_name(&lower))));
        }
        Some(
            std::str::from_utf8(v)
                .ok()
                .filter(|s| s.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b)))
                .ok_or_else(|| HeaderError::InvalidCharacters(display_name(&lower))),
        )
    }

    /// A header whose value may use the Base64 sentinel (`Mcp-Name`, `Mcp-Param-*`), decoded.
    pub fn get_decoded(&self, name: &str) -> Option<Result<String, HeaderError>> {
        Some(self.get(name)?.and_then(|v| {
            decode_value(v).ok_or_else(|| HeaderError::InvalidBase64(display_name(name)))
        }))
    }

    /// The `MCP-Protocol-Version` value.
    pub fn protocol_version(&self) -> Option<Result<&str, HeaderError>> {
        self.get(PROTOCOL_VERSION)
    }
}

/// The conventional spelling of a header for messages (`mcp-param-region` → `Mcp-Param-Region`).
pub fn display_name(lower: &str) -> String {
    match lower.to_ascii_lowercase().as_str() {
        PROTOCOL_VERSION => "MCP-Protocol-Version".to_string(),
        other => other
            .split('-')
            .map(|part| {
                let mut c = part.chars();
                c.next().map_or_else(String::new, |f| {
                    f.to_ascii_uppercase().to_string() + c.as_str()
                })
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

const SENTINEL_PREFIX: &str = "=?base64?";
const SENTINEL_SUFFIX: &str = "?=";

/// Decodes a header value that may use the Base64 sentinel: `=?base64?{standard Base64}?=`
/// (markers exact and lowercase) is decoded strictly (standard alphabet, canonical padding) and
/// must be UTF-8; anything else is the literal value. `None`: an invalid sentinel value.
pub fn decode_value(raw: &str) -> Option<String> {
    if raw.len() >= SENTINEL_PREFIX.len() + SENTINEL_SUFFIX.len()
        && raw.starts_with(SENTINEL_PREFIX)
        && raw.ends_with(SENTINEL_SUFFIX)
    {
        let inner = &raw[SENTINEL_PREFIX.len()..raw.len() - SENTINEL_SUFFIX.len()];
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(inner)
            .ok()?;
        String::from_utf8(bytes).ok()
    } else {
        Some(raw.to_string())
    }
}

/// A tool parameter mirrored into a header (`x-mcp-header` in its input schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirroredParam {
    /// The `{Name}` of `Mcp-Param-{Name}`.
    pub header: String,
    /// The chain of `properties` keys from the schema root to the parameter.
    pub path: Vec<String>,
}

/// The parameters of an input schema marked `x-mcp-header` that are statically reachable
/// through `properties` alone (annotations anywhere else are not honoured), in schema order.
pub fn mirrored_params(input_schema: &Value) -> Vec<MirroredParam> {
    fn walk(schema: &Value, path: &mut Vec<String>, out: &mut Vec<MirroredParam>) {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (k, sub) in props {
            path.push(k.clone());
            if let Some(h) = sub.get("x-mcp-header").and_then(Value::as_str)
                && !h.is_empty()
            {
                out.push(MirroredParam {
                    header: h.to_string(),
                    path: path.clone(),
                });
            }
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(input_schema, &mut Vec::new(), &mut out);
    out
}

/// Whether a decoded header value equals a body value: strings exactly, booleans as
/// `true`/`false`, integers numerically when the header is a plain decimal (`42.0` = `42`,
/// exactly, with no float round trip), other numbers as their JSON rendering.
pub fn header_matches(header: &str, body: &Value) -> bool {
    match body {
        Value::String(s) => header == s,
        Value::Bool(b) => header == if *b { "true" } else { "false" },
        Value::Number(n) => {
            let integral = n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 1e18)
                        .map(|f| f as i128)
                });
            if let Some(v) = integral
                && is_plain_decimal(header)
            {
                let (whole, fraction) = header.split_once('.').unwrap_or((header, ""));
                return fraction.bytes().all(|b| b == b'0')
                    && whole.parse::<i128>().is_ok_and(|w| w == v);
            }
            header == n.to_string()
        }
        _ => false,
    }
}

/// `-?[0-9]+(\.[0-9]+)?`: the header values compared numerically.
fn is_plain_decimal(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let s = s.strip_prefix('-').unwrap_or(s);
    match s.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(s),
    }
}

/// Checks every mirrored parameter of a tool against the call's arguments: a value present in
/// the body needs its header, equal after decoding; a header without a body value is a
/// mismatch too. The error message names the header.
pub fn check_mirrored_params(
    headers: &RequestHeaders,
    params: &[MirroredParam],
    arguments: &Value,
) -> Result<(), String> {
    for p in params {
        let name = format!("{PARAM_PREFIX}{}", p.header);
        let shown = format!("Mcp-Param-{}", p.header);
        let mut body = Some(arguments);
        for k in &p.path {
            body = body.and_then(|v| v.get(k));
        }
        let body = body.filter(|v| !v.is_null());
        match (headers.get_decoded(&name), body) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(format!(
                    "the {shown} header is required: the argument `{}` is set",
                    p.path.join(".")
                ));
            }
            (Some(Err(e)), _) => return Err(e.to_string()),
            (Some(Ok(h)), None) => {
                return Err(format!(
                    "the {shown} header value '{h}' has no argument `{}` to match",
                    p.path.join(".")
                ));
            }
            (Some(Ok(h)), Some(b)) if !header_matches(&h, b) => {
                return Err(format!(
                    "{shown} header value '{h}' does not match body value {b}"
                ));
            }
            (Some(Ok(_)), Some(_)) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_case_insensitive_values_trimmed_and_checked() {
        let h = RequestHeaders::from_pairs([
            ("MCP-METHOD", b" tools/list\t".as_slice()),
            ("content-type", b"application/json"),
            ("Mcp-Name", b"caf\xc3\xa9"),
            ("mcp-param-a", b"1"),
            ("Mcp-Param-A", b"2"),
        ]);
        assert_eq!(h.get("mcp-method"), Some(Ok("tools/list")));
        assert_eq!(h.get("Mcp-Method"), Some(Ok("tools/list")));
        assert_eq!(h.get("content-type"), None, "non-MCP headers are not kept");
        assert_eq!(
            h.get("mcp-name"),
            Some(Err(HeaderError::InvalidCharacters("Mcp-Name".into())))
        );
        assert_eq!(
            h.get("MCP-PARAM-A"),
            Some(Err(HeaderError::Repeated("Mcp-Param-A".into())))
        );
        assert_eq!(h.protocol_version(), None);
    }

    #[test]
    fn base64_sentinel_is_decoded_strictly_and_everything_else_is_literal() {
        assert_eq!(decode_value("=?base64?SGVsbG8=?="), Some("Hello".into()));
        assert_eq!(
            decode_value("=?base64?SGVsbG8sIOS4lueVjA==?="),
            Some("Hello, 世界".into())
        );
        assert_eq!(decode_value("=?base64??="), Some(String::new()));
        assert_eq!(
            decode_value("=?base64?SGVsbG8?="),
            None,
            "padding is required"
        );
        assert_eq!(decode_value("=?base64?SGVs!!!bG8=?="), None);
        assert_eq!(
            decode_value("=?base64?SGVsbG9=?="),
            None,
            "non-canonical trailing bits"
        );
        assert_eq!(decode_value("=?base64?/w==?="), None, "not UTF-8");
        assert_eq!(decode_value("SGVsbG8="), Some("SGVsbG8=".into()));
        assert_eq!(
            decode_value("=?base64?SGVsbG8="),
            Some("=?base64?SGVsbG8=".into())
        );
        assert_eq!(
            decode_value("=?BASE64?SGVsbG8=?="),
            Some("=?BASE64?SGVsbG8=?=".into())
        );
        assert_eq!(
            decode_value("=?base64?="),
            Some("=?base64?=".into()),
            "markers may not overlap"
        );
    }

    #[test]
    fn mirrored_params_follow_properties_only() {
        let schema = json!({
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "nested": {"type": "object", "properties": {"tenant": {"type": "integer", "x-mcp-header": "Tenant"}}},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"x-mcp-header": "X"}}}},
                "plain": {"type": "string"}
            },
            "allOf": [{"properties": {"y": {"x-mcp-header": "Y"}}}]
        });
        let got = mirrored_params(&schema);
        assert_eq!(got.len(), 2);
        assert!(got.contains(&MirroredParam {
            header: "Region".into(),
            path: vec!["region".into()]
        }));
        assert!(got.contains(&MirroredParam {
            header: "Tenant".into(),
            path: vec!["nested".into(), "tenant".into()]
        }));
    }

    #[test]
    fn header_values_match_body_values_by_type() {
        assert!(header_matches("us-west1", &json!("us-west1")));
        assert!(!header_matches("US-WEST1", &json!("us-west1")));
        assert!(header_matches("42", &json!(42)));
        assert!(header_matches("42.0", &json!(42)));
        assert!(header_matches("-7", &json!(-7)));
        assert!(!header_matches("42abc", &json!(42)));
        assert!(!header_matches("NaN", &json!(42)));
        assert!(
            !header_matches("4.2e1", &json!(42)),
            "no scientific notation"
        );
        assert!(!header_matches("42.5", &json!(42)));
        assert!(!header_matches("42.", &json!(42)));
        assert!(header_matches(
            "9007199254740993",
            &json!(9007199254740993_u64)
        ));
        assert!(header_matches("1.5", &json!(1.5)));
        assert!(header_matches("true", &json!(true)));
        assert!(!header_matches("True", &json!(true)));
        assert!(!header_matches("x", &json!({"a": 1})));
    }

    #[test]
    fn mirrored_param_checks_cover_every_case_of_the_spec_table() {
        let params = vec![MirroredParam {
            header: "Region".into(),
            path: vec!["region".into()],
        }];
        let with = |v: &[u8]| RequestHeaders::from_pairs([("Mcp-Param-Region", v)]);
        let none = RequestHeaders::new();
        let args = json!({"region": "Hello"});
        assert!(check_mirrored_params(&with(b"=?base64?SGVsbG8=?="), &params, &args).is_ok());
        assert!(check_mirrored_params(&with(b"Hello"), &params, &args).is_ok());
        assert!(check_mirrored_params(&with(b"=?base64?SGVsbG8?="), &params, &args).is_err());
        assert!(check_mirrored_params(&with(b"=?base64?SGVs!!!bG8=?="), &params, &args).is_err());
        assert!(
            check_mirrored_params(&with(b"SGVsbG8="), &params, &json!({"region": "SGVsbG8="}))
                .is_ok()
        );
        assert!(
            check_mirrored_params(
                &with(b"=?base64?SGVsbG8="),
                &params,
                &json!({"region": "=?base64?SGVsbG8="})
            )
            .is_ok()
        );
        let e =
            check_mirrored_params(&none, &params, &json!({"region": "test-value"})).unwrap_err();
        assert!(e.contains("Mcp-Param-Region"), "{e}");
        assert!(check_mirrored_params(&none, &params, &json!({})).is_ok());
        assert!(check_mirrored_params(&none, &params, &json!({"region": null})).is_ok());
        assert!(check_mirrored_params(&with(b"Hello"), &params, &json!({})).is_err());
        assert!(check_mirrored_params(&with(b"Other"), &params, &args).is_err());
    }

    #[test]
    fn display_names_are_conventional() {
        assert_eq!(display_name("mcp-protocol-version"), "MCP-Protocol-Version");
        assert_eq!(display_name("mcp-param-region"), "Mcp-Param-Region");
        assert_eq!(display_name("mcp-method"), "Mcp-Method");
    }
}
