//! The built-in switchboard: opening with `USR`, joining with `ANS`, inviting with `CAL`,
//! messages to everyone else on the board, and `BYE` when someone leaves.

use std::sync::Arc;
use std::time::Instant;

use msn_http_core::msnp::{Command, with_payload};

use super::{Admits, Board, Flow, Handler, Member, Peer, Shared, args, line, trid, user};

pub(super) struct SbConnection {
    state: Arc<Shared>,
    peer: Peer,
    /// The board joined, and who we are on it.
    joined: Option<(u64, &'static super::User)>,
}

impl SbConnection {
    pub(super) fn new(state: Arc<Shared>, peer: Peer) -> Self {
        Self { state, peer, joined: None }
    }

    /// `USR trid email cookie` (a new board) or `ANS trid email cookie session` (an invitation).
    fn enter(&mut self, now: Instant, answering: bool, args: &[String], out: &mut Vec<u8>) -> Flow {
        let t = trid(args);
        let mut state = self.state.lock();
        let user = args.get(1).and_then(|email| user(email));
        let entry = match (user, args.get(2)) {
            (Some(user), Some(cookie)) => {
                state.tickets.take(now, user.email, cookie).map(|admits| (user, admits))
            }
            _ => None,
        };
        let session = args.get(3).and_then(|s| s.parse::<u64>().ok());
        let (user, board) = match (entry, answering) {
            (Some((user, Admits::NewBoard)), false) => (user, None),
            (Some((user, Admits::Board(id))), true) if session == Some(id) => (user, Some(id)),
            _ => {
                line(out, &format!("911 {t}"));
                return Flow::Close;
            }
        };
        let member = Member { user, peer: self.peer.clone() };
        let id = match board {
            None => {
                let id = state.next_id();
                state.boards.insert(id, Board { members: vec![member] });
                line(out, &format!("USR {t} OK {} {}", user.email, user.friendly));
                id
            }
            Some(id) => {
                let Some(board) = state.boards.get_mut(&id) else {
                    line(out, &format!("911 {t}"));
                    return Flow::Close;
                };
                let n = board.members.len();
                for (i, m) in board.members.iter().enumerate() {
                    let (email, friendly) = (m.user.email, m.user.friendly);
                    line(out, &format!("IRO {t} {} {n} {email} {friendly}", i + 1));
                    m.peer.send(format!("JOI {} {}\r\n", user.email, user.friendly).into_bytes());
                }
                line(out, &format!("ANS {t} OK"));
                board.members.push(member);
                id
            }
        };
        self.joined = Some((id, user));
        Flow::Continue
    }

    fn cal(
        &mut self,
        now: Instant,
        board: u64,
        me: &'static super::User,
        args: &[String],
        out: &mut Vec<u8>,
    ) {
        let t = trid(args);
        let Some(invitee) = args.get(1).and_then(|email| user(email)) else {
            line(out, &format!("205 {t}"));
            return;
        };
        let mut state = self.state.lock();
        let already = state
            .boards
            .get(&board)
            .is_some_and(|b| b.members.iter().any(|m| m.user.email == invitee.email));
        if already {
            line(out, &format!("215 {t}"));
            return;
        }
        let reachable = state
            .online
            .get(invitee.email)
            .filter(|p| p.visible_status().is_some())
            .map(|p| p.peer.clone());
        let Some(invitee_ns) = reachable else {
            line(out, &format!("217 {t}"));
            return;
        };
        let cookie = state.ticket(now, invitee.email, Admits::Board(board));
        let sb = state.sb_addr;
        invitee_ns.send(
            format!("RNG {board} {sb} CKI {cookie} {} {}\r\n", me.email, me.friendly).into_bytes(),
        );
        line(out, &format!("CAL {t} RINGING {board}"));
    }

    fn msg(&mut self, board: u64, me: &'static super::User, cmd: &Command<'_>, out: &mut Vec<u8>) {
        let args = args(cmd);
        let t = trid(&args);
        let ack = args.get(1).map_or("N", String::as_str);
        let payload = cmd.payload().unwrap_or_default();
        let forwarded = with_payload(&format!("MSG {} {}", me.email, me.friendly), payload);
        let state = self.state.lock();
        let mut delivered = 0;
        if let Some(b) = state.boards.get(&board) {
            for m in b.members.iter().filter(|m| m.peer.id != self.peer.id) {
                m.peer.send(forwarded.clone());
                delivered += 1;
            }
        }
        match (ack, delivered) {
            ("A" | "D", 1..) => line(out, &format!("ACK {t}")),
            ("A" | "D" | "N", 0) => line(out, &format!("NAK {t}")),
            _ => {}
        }
    }
}

impl Handler for SbConnection {
    fn handle(&mut self, now: Instant, cmd: &Command<'_>, out: &mut Vec<u8>) -> Flow {
        let name = cmd.name();
        match (name, self.joined) {
            ("USR", None) => self.enter(now, false, &args(cmd), out),
            ("ANS", None) => self.enter(now, true, &args(cmd), out),
            ("OUT", _) => Flow::Close,
            ("CAL", Some((board, me))) => {
                self.cal(now, board, me, &args(cmd), out);
                Flow::Continue
            }
            ("MSG", Some((board, me))) => {
                self.msg(board, me, cmd, out);
                Flow::Continue
            }
            ("USR" | "ANS" | "CAL" | "MSG", _) => {
                line(out, &format!("715 {}", trid(&args(cmd))));
                Flow::Continue
            }
            _ => {
                line(out, &format!("200 {}", trid(&args(cmd))));
                Flow::Continue
            }
        }
    }

    fn disconnected(&mut self) {
        let Some((id, me)) = self.joined.take() else { return };
        let mut state = self.state.lock();
        let Some(board) = state.boards.get_mut(&id) else { return };
        board.members.retain(|m| m.peer.id != self.peer.id);
        for m in &board.members {
            m.peer.send(format!("BYE {}\r\n", me.email).into_bytes());
        }
        if board.members.is_empty() {
            state.boards.remove(&id);
            state.tickets.forget_board(id);
        }
    }
}
