//! The client side of raw HTTP exchanges with a gateway server, sans-IO: the request a client
//! posts, the answers it reads back, and what a `200` must look like. The adapters' gateway
//! server tests wrap their runtime's socket around it.

use crate::complete_response_len;

/// A `POST` to the gateway path of `host` with `query`, carrying `body`.
pub fn gateway_post(host: &str, query: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /gateway/gateway.dll?{query} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-msn-messenger\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A `200` as the gateway writes it: the session ID, the `GW-IP`, `Session=close` on the
/// session's last answer, and the MSNP body.
pub fn ok_answer(id: &str, gw: &str, body: &str, close: bool) -> String {
    let close = if close { "; Session=close" } else { "" };
    format!(
        "HTTP/1.1 200 OK\r\nX-MSN-Messenger: SessionID={id}; GW-IP={gw}{close}\r\n\
         Content-Type: application/x-msn-messenger\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The session ID of a `200`, checked for the `stable.suffix` shape.
pub fn session_id(answer: &str) -> String {
    let id = answer
        .split("SessionID=")
        .nth(1)
        .and_then(|rest| rest.split([';', '\r']).next())
        .unwrap_or_else(|| panic!("no SessionID in {answer:?}"));
    let (stable, suffix) = id.split_once('.').expect("a dot in the ID");
    assert!(stable.parse::<u64>().is_ok() && suffix.parse::<u32>().is_ok(), "{id}");
    id.to_owned()
}

/// Checks that `next` is the same session as `previous` with a new suffix.
pub fn assert_rotated(previous: &str, next: &str) {
    assert_ne!(previous, next, "the ID changes with every response");
    assert_eq!(previous.split('.').next(), next.split('.').next(), "the stable part stays");
}

/// Answer bytes read off a connection, taken one whole answer at a time.
#[derive(Debug, Default)]
pub struct Answers {
    buf: Vec<u8>,
}

impl Answers {
    /// Bytes just read.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole answer, as it came off the wire, once it is all there.
    pub fn next_answer(&mut self) -> Option<String> {
        let len = complete_response_len(&self.buf).expect("the gateway answers HTTP")?;
        let raw: Vec<u8> = self.buf.drain(..len).collect();
        Some(String::from_utf8(raw).expect("answers are text"))
    }

    /// The next whole answer, reading more with `read` (into a buffer; `0` at the end of the
    /// stream) until it is all there. Panics when the connection ends first, or fails.
    pub async fn read_answer<E: std::fmt::Debug>(
        &mut self,
        mut read: impl AsyncFnMut(&mut [u8]) -> Result<usize, E>,
    ) -> String {
        for _ in 0..crate::MAX_READS_PER_MESSAGE {
            if let Some(answer) = self.next_answer() {
                return answer;
            }
            let mut chunk = [0u8; 4096];
            let n = read(&mut chunk).await.expect("reading an answer");
            assert!(n > 0, "connection closed before a whole response");
            self.extend(&chunk[..n]);
        }
        panic!("no whole response");
    }

    /// Whether no byte waits.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_out_whole_and_in_order() {
        let first = ok_answer("12.3", "gw:80", "VER 1 MSNP8\r\n", false);
        let second = ok_answer("12.4", "gw:80", "", true);
        let wire = format!("{first}{second}");
        let mut answers = Answers::default();
        answers.extend(&wire.as_bytes()[..first.len() - 1]);
        assert_eq!(answers.next_answer(), None);
        answers.extend(&wire.as_bytes()[first.len() - 1..]);
        assert_eq!(answers.next_answer().as_deref(), Some(first.as_str()));
        assert_eq!(answers.next_answer().as_deref(), Some(second.as_str()));
        assert!(answers.is_empty());
        assert_eq!(session_id(&second), "12.4");
        assert_rotated("12.3", "12.4");
    }
}
