//! NDJSON framing: one JSON-RPC message per line, with a size limit that is enforced while
//! reading, so an oversized line is refused without being buffered whole.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The line exceeds the limit; the connection should be closed.
    #[error("message exceeds the {limit}-byte line limit")]
    TooLong {
        /// The limit.
        limit: usize,
    },
    /// The line is not UTF-8.
    #[error("message is not valid UTF-8")]
    InvalidUtf8,
    /// The transport failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads newline-delimited messages.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Wraps a buffered reader.
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            buf: Vec::new(),
        }
    }

    /// The next non-empty line (without its `\n` / `\r\n`), or `None` at end of stream.
    /// After [`FrameError::TooLong`] the stream is positioned mid-line: close it.
    pub async fn next_line(&mut self) -> Result<Option<String>, FrameError> {
        loop {
            self.buf.clear();
            let mut eof = false;
            loop {
                let available = self.inner.fill_buf().await?;
                if available.is_empty() {
                    eof = true;
                    break;
                }
                match memchr(available) {
                    Some(i) => {
                        if self.buf.len() + i > self.max {
                            return Err(FrameError::TooLong { limit: self.max });
                        }
                        self.buf.extend_from_slice(&available[..i]);
                        self.inner.consume(i + 1);
                        break;
                    }
                    None => {
                        let n = available.len();
                        if self.buf.len() + n > self.max {
                            return Err(FrameError::TooLong { limit: self.max });
                        }
                        self.buf.extend_from_slice(available);
                        self.inner.consume(n);
                    }
                }
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                if eof {
                    return Ok(None);
                }
                continue; // blank line: skip
            }
            let line = std::mem::take(&mut self.buf);
            return String::from_utf8(line)
                .map(Some)
                .map_err(|_| FrameError::InvalidUtf8);
        }
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// Writes one message and its newline.
pub async fn write_line<W: AsyncWrite + Unpin>(w: &mut W, line: &str) -> std::io::Result<()> {
    w.write_all(line.as_bytes()).await?;
    w.write_all(b"\n").await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Result<Option<String>, String>> {
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(8, input), max);
        let mut out = Vec::new();
        loop {
            let x = r.next_line().await.map_err(|e| e.to_string());
            let stop = !matches!(x, Ok(Some(_)));
            out.push(x);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_skips_blanks_and_strips_crlf() {
        let got = lines(b"{\"a\":1}\r\n\n  \n{\"b\":22222222222}\n{\"c\":3}", 100).await;
        assert_eq!(
            got,
            vec![
                Ok(Some("{\"a\":1}".into())),
                Ok(Some("{\"b\":22222222222}".into())),
                Ok(Some("{\"c\":3}".into())),
                Ok(None)
            ]
        );
    }

    #[tokio::test]
    async fn oversized_line_is_refused_before_it_is_buffered_whole() {
        let mut input = vec![b'x'; 1000];
        input.push(b'\n');
        let got = lines(&input, 64).await;
        assert_eq!(
            got,
            vec![Err("message exceeds the 64-byte line limit".into())]
        );
    }

    #[tokio::test]
    async fn invalid_utf8_is_an_error() {
        let got = lines(b"\xff\xfe\n", 64).await;
        assert_eq!(got, vec![Err("message is not valid UTF-8".into())]);
    }
}
