//! Requests as the fake gateway reads them off the wire, and the length of a response a fake
//! client reads back.

/// A request read off the wire.
#[derive(Clone, Debug)]
pub struct RawRequest {
    /// The request target, origin or absolute form.
    pub target: String,
    /// Header fields as sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
    /// Head and body as received.
    pub wire: Vec<u8>,
}

impl RawRequest {
    /// A header field's value (name matched without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A query parameter, from an origin-form or absolute-form target.
    pub fn param(&self, key: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.to_owned())
        })
    }
}

/// What [`parse_request`] found at the front of a buffer.
#[derive(Debug)]
pub enum Parsed {
    /// A whole request, taken out of the buffer.
    Request(RawRequest),
    /// More bytes are needed.
    Partial,
    /// Not HTTP.
    Invalid,
}

/// Takes one request (head, then a `Content-Length` body) off the front of `buf`.
pub fn parse_request(buf: &mut Vec<u8>) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if buf.len() < head_len + len {
        return Parsed::Partial;
    }
    let Some(target) = req.path.map(str::to_owned) else {
        return Parsed::Invalid;
    };
    let wire: Vec<u8> = buf.drain(..head_len + len).collect();
    let body = wire[head_len..].to_vec();
    Parsed::Request(RawRequest { target, headers, body, wire })
}

/// The length of the `Content-Length` response (after any `100 Continue`) at the front of
/// `buf`, once it is all there; `Err` when it is not HTTP.
pub fn complete_response_len(buf: &[u8]) -> Result<Option<usize>, httparse::Error> {
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut fields);
    if let httparse::Status::Complete(head_len) = resp.parse(buf)? {
        let len: usize = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .unwrap_or(0);
        if buf.len() >= head_len + len {
            return Ok(Some(head_len + len));
        }
    }
    Ok(None)
}
