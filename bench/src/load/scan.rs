//! A cheap look at a server message: the envelope's top-level keys only (`id`, `error`,
//! `method`, and `result.isError`), skipping every nested value without building it.
//!
//! It is not a validator: it assumes the server writes well-formed JSON, and only needs to be
//! right about which top-level keys are present. Keys inside nested values (a tool's structured
//! output that happens to contain `"id"` or `"isError"`) are skipped, never mistaken for ours.

/// What a line from the server is, as far as the load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// A response (no `method`): its id if it is a non-negative integer, whether it is a JSON-RPC
    /// error, and whether a result carries `isError: true`.
    Response {
        /// Numeric id (`None` for null, string or fractional ids).
        id: Option<u64>,
        /// Has a top-level `error` member.
        error: bool,
        /// `result.isError` is `true`.
        is_error: bool,
    },
    /// A server → client request (has `method` and `id`).
    Request,
    /// A notification (has `method`, no `id`).
    Notification,
}

/// The line is not a JSON object we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset where reading failed.
    pub at: usize,
}

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

type R<T> = Result<T, ScanError>;

impl<'a> Cur<'a> {
    fn err<T>(&self) -> R<T> {
        Err(ScanError { at: self.i })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> R<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err()
        }
    }

    /// A string's raw contents (escapes left as they are); the cursor is on its opening quote.
    fn string(&mut self) -> R<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.b[self.i..]) {
                Some(k) => {
                    self.i += k;
                    if self.b[self.i] == b'\\' {
                        self.i += 2;
                        if self.i > self.b.len() {
                            return self.err();
                        }
                    } else {
                        let s = &self.b[start..self.i];
                        self.i += 1;
                        return Ok(s);
                    }
                }
                None => {
                    self.i = self.b.len();
                    return self.err();
                }
            }
        }
    }

    /// Skips any value.
    fn skip_value(&mut self) -> R<()> {
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{' | b'[') => self.skip_nested(),
            Some(_) => {
                // number, true, false, null
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start { self.err() } else { Ok(()) }
            }
            None => self.err(),
        }
    }

    /// Skips an object or array, counting brackets outside strings.
    fn skip_nested(&mut self) -> R<()> {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1).ok_or(ScanError { at: self.i })?;
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        self.err()
    }

    /// Visits the members of the object at the cursor.
    fn members(&mut self, mut visit: impl FnMut(&mut Self, &'a [u8]) -> R<()>) -> R<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.eat(b':')?;
            self.ws();
            visit(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err(),
            }
        }
    }

    /// A non-negative integer id, or `None` for anything else (which is skipped).
    fn id(&mut self) -> R<Option<u64>> {
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
            {
                Some(n) => n,
                None => {
                    self.i = start;
                    self.skip_value()?;
                    return Ok(None);
                }
            };
            self.i += 1;
        }
        let integral = self.i > start
            && matches!(
                self.peek(),
                Some(b',' | b'}' | b' ' | b'\t' | b'\r' | b'\n')
            );
        if integral {
            Ok(Some(n))
        } else {
            self.i = start;
            self.skip_value()?;
            Ok(None)
        }
    }
}

/// Looks at one line from the server.
pub fn scan(line: &[u8]) -> Result<Scanned, ScanError> {
    let mut c = Cur { b: line, i: 0 };
    let mut id = None;
    let mut has_id = false;
    let mut error = false;
    let mut is_error = false;
    let mut method = false;
    c.members(|c, key| {
        match key {
            b"id" => {
                has_id = true;
                id = c.id()?;
            }
            b"error" => {
                error = true;
                c.skip_value()?;
            }
            b"method" => {
                method = true;
                c.skip_value()?;
            }
            b"result" if c.peek() == Some(b'{') => c.members(|c, key| {
                if key == b"isError" {
                    c.ws();
                    if c.b[c.i..].starts_with(b"true") {
                        is_error = true;
                    }
                }
                c.skip_value()
            })?,
            _ => c.skip_value()?,
        }
        Ok(())
    })?;
    c.ws();
    if c.i != line.len() {
        return c.err();
    }
    Ok(match (method, has_id) {
        (true, true) => Scanned::Request,
        (true, false) => Scanned::Notification,
        (false, _) => Scanned::Response {
            id,
            error,
            is_error,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(id: Option<u64>, error: bool, is_error: bool) -> Result<Scanned, ScanError> {
        Ok(Scanned::Response {
            id,
            error,
            is_error,
        })
    }

    #[test]
    fn plain_result() {
        let l = br#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"hello"}],"isError":false}}"#;
        assert_eq!(scan(l), resp(Some(42), false, false));
    }

    #[test]
    fn id_anywhere_and_whitespace() {
        let l = br#" { "result" : { "content" : [ ] } , "jsonrpc" : "2.0" , "id" : 7 } "#;
        assert_eq!(scan(l), resp(Some(7), false, false));
    }

    #[test]
    fn error_response() {
        let l = br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad \"id\": 9"}}"#;
        assert_eq!(scan(l), resp(Some(3), true, false));
        let l = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#;
        assert_eq!(scan(l), resp(None, true, false));
    }

    #[test]
    fn is_error_result() {
        let l = br#"{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}"#;
        assert_eq!(scan(l), resp(Some(5), false, true));
    }

    #[test]
    fn nested_lookalikes_are_ignored() {
        // An "id", "error", "method" and "isError" inside the result or inside strings are not ours.
        let l = br#"{"jsonrpc":"2.0","result":{"structuredContent":{"id":1,"isError":true,"error":"x","method":"m"},"content":[{"type":"text","text":"{\"id\":2,\"isError\":true}"}]},"id":11}"#;
        assert_eq!(scan(l), resp(Some(11), false, false));
        let l = br#"{"id":12,"result":{"content":[{"text":"]]}}[[\\"}]}}"#;
        assert_eq!(scan(l), resp(Some(12), false, false));
    }

    #[test]
    fn ids_that_cannot_be_ours() {
        assert_eq!(scan(br#"{"id":"7","result":{}}"#), resp(None, false, false));
        assert_eq!(scan(br#"{"id":-7,"result":{}}"#), resp(None, false, false));
        assert_eq!(scan(br#"{"id":7.5,"result":{}}"#), resp(None, false, false));
        assert_eq!(scan(br#"{"id":1e3,"result":{}}"#), resp(None, false, false));
        assert_eq!(
            scan(br#"{"id":99999999999999999999999,"result":{}}"#),
            resp(None, false, false)
        );
        assert_eq!(
            scan(br#"{"id":18446744073709551615,"result":{}}"#),
            resp(Some(u64::MAX), false, false)
        );
    }

    #[test]
    fn requests_and_notifications() {
        assert_eq!(
            scan(
                br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}"#
            ),
            Ok(Scanned::Notification)
        );
        assert_eq!(
            scan(br#"{"jsonrpc":"2.0","id":"s1","method":"roots/list"}"#),
            Ok(Scanned::Request)
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for l in [
            &b""[..],
            b"hello",
            b"[1,2]",
            b"{\"id\":1",
            b"{\"id\":1,}",
            b"{\"id\":1} trailing",
            b"{\"id\":1,\"result\":{\"a\":[}",
            b"{\"id\":1,\"result\":\"unterminated}",
            b"{\"id\":}",
        ] {
            assert!(
                scan(l).is_err(),
                "{:?} should not scan",
                String::from_utf8_lossy(l)
            );
        }
    }
}
