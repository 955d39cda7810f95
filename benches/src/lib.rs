//! Shared fixtures for the msn-http benchmarks: captured-style gateway responses and the
//! "floor" implementations each figure is compared with.

use std::time::{Duration, Instant};

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Event, Session, Target};
use msn_http_core::msnp::{CommandFramer, FramerLimits, PayloadCommands};
use msn_http_core::wire::{
    HeaderSet, HttpLimits, RequestEncoder, RequestLine, ResponseDecoder, ResponseStep, ServerKind,
    TargetForm,
};

/// The session ID the official gateway might hand out.
pub const SESSION_ID: &str = "954547325.13160";

/// A send body: one `MSG` with a typical payload.
pub const SEND_BODY: &[u8] = b"MSG 4 N 131\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n\r\nhello";

/// One request to encode: our request line, and the query and body the floor writes.
pub struct EncodeCase {
    /// `open`, `send` or `poll`.
    pub name: &'static str,
    /// What our encoder is asked for.
    pub line: RequestLine<'static>,
    /// The query, in pieces, for the floor.
    pub query: [&'static [u8]; 2],
    /// The request body.
    pub body: &'static [u8],
}

/// The three request kinds, as the official client sends them.
pub fn encode_cases() -> [EncodeCase; 3] {
    [
        EncodeCase {
            name: "open",
            line: RequestLine::Open {
                server: ServerKind::Notification,
                ip: "messenger.hotmail.com",
            },
            query: [b"Action=open&Server=NS&IP=", b"messenger.hotmail.com"],
            body: b"VER 5 MSNP8 CVR0\r\n",
        },
        EncodeCase {
            name: "send",
            line: RequestLine::Send { session_id: SESSION_ID },
            query: [b"SessionID=", SESSION_ID.as_bytes()],
            body: SEND_BODY,
        },
        EncodeCase {
            name: "poll",
            line: RequestLine::Poll { session_id: SESSION_ID, lifespan: None },
            query: [b"Action=poll&SessionID=", SESSION_ID.as_bytes()],
            body: b"",
        },
    ]
}

/// Our encoder with the official header set, and the gateway it writes for.
pub fn encoder() -> (RequestEncoder, Endpoint) {
    let encoder = RequestEncoder::new("/gateway/gateway.dll", &HeaderSet::official(), None)
        .expect("the official header set is valid");
    (encoder, Endpoint::parse("207.46.110.18", 80).expect("valid address"))
}

/// Our path: the case encoded into `out` (cleared first).
pub fn encode(encoder: &RequestEncoder, gateway: &Endpoint, case: &EncodeCase, out: &mut Vec<u8>) {
    out.clear();
    encoder.encode(out, gateway, TargetForm::Origin, case.line, case.body);
}

/// The floor for encoding: the same bytes written with `extend_from_slice` and `itoa`.
pub fn floor_encode(out: &mut Vec<u8>, query: &[&[u8]], body: &[u8]) {
    out.clear();
    out.extend_from_slice(b"POST /gateway/gateway.dll?");
    for part in query {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(
        b" HTTP/1.1\r\nAccept: */*\r\nAccept-Language: en-us\r\nUser-Agent: MSMSGS\r\nHost: 207.46.110.18\r\nProxy-Connection: Keep-Alive\r\nConnection: Keep-Alive\r\nPragma: no-cache\r\nContent-Type: application/x-msn-messenger\r\nContent-Length: ",
    );
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// A client session in steady state, answering every poll with the same response.
pub struct SessionCycle {
    session: Session,
    now: Instant,
    out: Vec<u8>,
    reply: Vec<u8>,
}

impl SessionCycle {
    /// An opened session whose polls get `reply`.
    pub fn new(reply: Vec<u8>) -> Self {
        let now = Instant::now();
        let gateway = Endpoint::parse("207.46.110.18", 80).expect("valid address");
        let target = Target::notification("messenger.hotmail.com");
        let mut session =
            Session::new(ClientConfig::new(gateway), target, now).expect("default config");
        let mut out = Vec::with_capacity(4096);
        session.send(b"VER 1 MSNP8 CVR0\r\n").expect("queued");
        session.poll_transmit(now, &mut out).expect("the open request");
        session.handle_input(now, &reply);
        while session.poll_event().is_some() {}
        Self { session, now, out, reply }
    }

    /// One cycle: 2 s pass, the poll goes out, its response comes in, events are drained.
    /// Returns the commands received.
    pub fn run(&mut self) -> usize {
        self.now += Duration::from_secs(2);
        self.session.handle_timeout(self.now);
        self.out.clear();
        let sent = self.session.poll_transmit(self.now, &mut self.out);
        assert!(sent.is_some(), "a poll is due");
        self.session.handle_input(self.now, &self.reply);
        let mut commands = 0;
        while let Some(event) = self.session.poll_event() {
            commands += usize::from(matches!(event, Event::Command(_)));
        }
        commands
    }

    /// The floor of a cycle: the poll written by the encoding floor, the reply parsed by the
    /// decoding floor.
    pub fn floor(&mut self) -> usize {
        floor_encode(&mut self.out, &[b"Action=poll&SessionID=", SESSION_ID.as_bytes()], b"");
        floor_parse(&self.reply)
    }
}

/// The official gateway's head (as captured through a proxy), for a body of `len` bytes.
pub fn official_head(len: usize) -> String {
    format!(
        "HTTP/1.0 200 OK\r\nServer: Microsoft-IIS/5.0\r\nDate: Tue, 18 Mar 2003 07:39:53 GMT\r\nX-MSN-Messenger: SessionID=954547325.13160; GW-IP=207.46.110.18\r\nContent-Length: {len}\r\nContent-Type: application/x-msn-messenger\r\nAge: 0\r\nProxy-Connection: keep-alive\r\n\r\n"
    )
}

/// An MSNP body of about `size` bytes, as a gateway would queue it: presence lines and
/// `MSG` payload commands.
pub fn msnp_body(size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + 256);
    let mut n = 0;
    while body.len() < size {
        if n % 3 == 2 {
            let payload = format!(
                "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n\r\nmessage number {n}"
            );
            body.extend_from_slice(
                format!("MSG bob{n}@example.com Bob%20{n} {}\r\n", payload.len()).as_bytes(),
            );
            body.extend_from_slice(payload.as_bytes());
        } else {
            body.extend_from_slice(
                format!("NLN NLN bob{n}@example.com Bob%20{n} 268435492\r\n").as_bytes(),
            );
        }
        n += 1;
    }
    body
}

/// A whole response: official head and an MSNP body of about `size` bytes (0 for an empty poll).
pub fn response(size: usize) -> Vec<u8> {
    let body = if size == 0 { Vec::new() } else { msnp_body(size) };
    let mut wire = official_head(body.len()).into_bytes();
    wire.extend_from_slice(&body);
    wire
}

/// Where the head of `wire` ends.
pub fn head_len(wire: &[u8]) -> usize {
    memchr::memmem::find(wire, b"\r\n\r\n").map_or(wire.len(), |at| at + 4)
}

/// Our path: decode the response from reads of `piece` bytes and frame the body into
/// commands. Returns the number of commands.
pub fn decode_and_frame(
    decoder: &mut ResponseDecoder,
    framer: &mut CommandFramer,
    wire: &[u8],
    piece: usize,
) -> usize {
    decoder.reset();
    let mut commands = 0;
    for read in wire.chunks(piece) {
        let mut input = read;
        loop {
            match decoder.decode(&mut input) {
                Ok(ResponseStep::Body(data)) => framer.push(data),
                Ok(ResponseStep::Head) => {}
                Ok(ResponseStep::NeedMore | ResponseStep::Complete) => break,
                Err(e) => panic!("fixture failed to decode: {e}"),
            }
        }
        while let Ok(Some(_)) = framer.next_command() {
            commands += 1;
        }
    }
    commands
}

/// The floor: the least work that frames the body correctly. `httparse` over the head; then
/// per command one `memchr` for its line end, a look at its name and, for a payload command,
/// its length read off the end of the line and the payload skipped. Returns the number of
/// commands. It knows only the default payload commands and leaves out what no fixture
/// needs: limits, partial commands, and the token count that tells `QRY 12` (no payload) from
/// `QRY 12 id 32`.
pub fn floor_parse(wire: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = response.parse(wire) else {
        panic!("fixture head must parse");
    };
    let body = &wire[head..];
    let (mut at, mut commands) = (0, 0);
    while let Some(nl) = memchr::memchr(b'\n', &body[at..]) {
        let line = &body[at..at + nl];
        at += nl + 1;
        if line.get(..3).is_some_and(is_payload_command) {
            at += floor_payload_len(line);
        }
        commands += 1;
    }
    commands
}

/// Whether `name` is one of [`PayloadCommands::default`]'s.
fn is_payload_command(name: &[u8]) -> bool {
    matches!(
        name,
        b"MSG"
            | b"NOT"
            | b"UBX"
            | b"UUX"
            | b"GCF"
            | b"ADL"
            | b"RML"
            | b"FQY"
            | b"UBN"
            | b"UUN"
            | b"IPG"
            | b"PAG"
            | b"QRY"
            | b"SDG"
            | b"NFY"
            | b"PUT"
            | b"DEL"
            | b"UBM"
            | b"UUM"
            | b"241"
            | b"509"
    )
}

/// The number a payload command's line ends with (0 when it ends otherwise).
fn floor_payload_len(line: &[u8]) -> usize {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    line[line.len() - digits..].iter().fold(0, |n, &d| n * 10 + usize::from(d - b'0'))
}

/// A decoder and framer with the client's default limits.
pub fn decoder_and_framer() -> (ResponseDecoder, CommandFramer) {
    (
        ResponseDecoder::new(HttpLimits::default()),
        CommandFramer::new(PayloadCommands::default(), FramerLimits::default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_floor_writes_our_bytes() {
        let (encoder, gateway) = encoder();
        for case in encode_cases() {
            let (mut ours, mut floor) = (Vec::new(), Vec::new());
            encode(&encoder, &gateway, &case, &mut ours);
            floor_encode(&mut floor, &case.query, case.body);
            assert_eq!(ours, floor, "{}", case.name);
        }
    }

    #[test]
    fn the_decoding_floor_frames_what_we_frame() {
        // Presence lines end in a number that is no payload length; payloads hold lines.
        let body = "NLN NLN a@b.c A 268435492\r\nMSG a A 9\r\nPNG\r\nabcdQNG 50\r\n";
        let wire = format!("{}{body}", official_head(body.len()));
        assert_eq!(floor_parse(wire.as_bytes()), 3);
        let defaults = PayloadCommands::default();
        assert!(defaults.rules().iter().all(|rule| is_payload_command(&rule.name)));
        assert!(!["NLN", "CHG", "QNG", "OUT"].iter().any(|n| is_payload_command(n.as_bytes())));
    }

    #[test]
    fn a_session_cycle_delivers_the_reply() {
        let mut cycle = SessionCycle::new(response(300));
        assert!(cycle.run() >= 2);
        assert_eq!(cycle.run(), cycle.run());
    }

    #[test]
    fn fixtures_decode_to_whole_commands_at_any_read_size() {
        for size in [0, 300, 4096] {
            let wire = response(size);
            let (mut decoder, mut framer) = decoder_and_framer();
            let whole = decode_and_frame(&mut decoder, &mut framer, &wire, wire.len());
            assert_eq!(framer.buffered(), 0, "{size}: no partial command left");
            assert_eq!(floor_parse(&wire), whole, "{size}: the floor frames what we frame");
            for piece in [1, 64, 1500] {
                assert_eq!(decode_and_frame(&mut decoder, &mut framer, &wire, piece), whole);
            }
            if size > 0 {
                assert!(whole >= size / 150, "{size}: {whole} commands");
                assert!(wire.len() - head_len(&wire) >= size);
            }
        }
    }
}
