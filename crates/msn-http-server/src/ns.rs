//! The built-in notification server: MSNP7 login with MD5, presence, and switchboard
//! referrals.

use std::sync::Arc;
use std::time::Instant;

use msn_http_core::msnp::{Command, md5_login_response};

use super::{Admits, Flow, Handler, Peer, Presence, Shared, USERS, User, args, line, trid, user};

/// The protocol versions we speak, best first.
const VERSIONS: [&str; 3] = ["MSNP7", "MSNP6", "MSNP5"];
/// The statuses `CHG` accepts.
const STATUSES: [&str; 8] = ["NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN"];

/// Where a connection is in the login.
#[derive(Debug)]
enum Login {
    /// Before `USR MD5 I`.
    Anonymous,
    /// `USR MD5 S <salt>` was sent.
    Challenged { user: &'static User, salt: String },
    /// `USR OK` was sent.
    Done(&'static User),
}

pub(super) struct NsConnection {
    state: Arc<Shared>,
    peer: Peer,
    version: Option<&'static str>,
    login: Login,
}

impl NsConnection {
    pub(super) fn new(state: Arc<Shared>, peer: Peer) -> Self {
        Self { state, peer, version: None, login: Login::Anonymous }
    }

    fn usr(&mut self, args: &[String], out: &mut Vec<u8>) -> Flow {
        let t = trid(args);
        let (Some(method), Some(step), Some(value)) = (args.get(1), args.get(2), args.get(3))
        else {
            line(out, &format!("201 {t}"));
            return Flow::Continue;
        };
        if method != "MD5" {
            line(out, &format!("911 {t}"));
            return Flow::Continue;
        }
        match (step.as_str(), &self.login) {
            ("I", Login::Anonymous) => match user(value) {
                Some(user) => {
                    let salt = self.state.lock().token();
                    line(out, &format!("USR {t} MD5 S {salt}"));
                    self.login = Login::Challenged { user, salt };
                }
                None => line(out, &format!("911 {t}")),
            },
            ("S", Login::Challenged { user, salt }) => {
                let user = *user;
                let expected = md5_login_response(salt, user.password);
                if !value.eq_ignore_ascii_case(&expected) {
                    self.login = Login::Anonymous;
                    line(out, &format!("911 {t}"));
                    return Flow::Continue;
                }
                self.sign_in(user);
                line(out, &format!("USR {t} OK {} {}", user.email, user.friendly));
            }
            _ => line(out, &format!("715 {t}")),
        }
        Flow::Continue
    }

    /// Registers the user as signed in (not yet visible), replacing an older login elsewhere.
    fn sign_in(&mut self, user: &'static User) {
        let mut state = self.state.lock();
        let presence = Presence { user, status: None, peer: self.peer.clone() };
        if let Some(old) = state.online.insert(user.email, presence) {
            // Signed in from another place: the old connection is told and closed.
            old.peer.send(b"OUT OTH\r\n".to_vec());
            old.peer.disconnect();
            if old.visible_status().is_some() {
                broadcast(&state.online, user, &format!("FLN {}\r\n", user.email));
            }
        }
        drop(state);
        self.login = Login::Done(user);
    }

    fn chg(&mut self, user: &'static User, args: &[String], out: &mut Vec<u8>) {
        let t = trid(args);
        let Some(status) = args.get(1).filter(|s| STATUSES.contains(&s.as_str())) else {
            line(out, &format!("201 {t}"));
            return;
        };
        let mut state = self.state.lock();
        let Some(me) = state.online.get_mut(user.email).filter(|p| p.peer.id == self.peer.id)
        else {
            line(out, &format!("715 {t}"));
            return;
        };
        let first = me.status.is_none();
        let was_visible = me.visible_status().is_some();
        me.status = Some(status.clone());
        line(out, &format!("CHG {t} {status}"));
        if first {
            // The initial presence of everyone on the list, in the answer to the first CHG.
            for other in state.online.values().filter(|p| p.user.email != user.email) {
                if let Some(s) = other.visible_status() {
                    line(out, &format!("ILN {t} {s} {} {}", other.user.email, other.user.friendly));
                }
            }
        }
        let notice = match status.as_str() {
            "HDN" if was_visible => format!("FLN {}\r\n", user.email),
            "HDN" => return,
            s => format!("NLN {s} {} {}\r\n", user.email, user.friendly),
        };
        broadcast(&state.online, user, &notice);
    }

    fn syn(user: &'static User, args: &[String], out: &mut Vec<u8>) {
        let t = trid(args);
        let contacts: Vec<&User> = USERS.iter().filter(|u| u.email != user.email).collect();
        line(out, &format!("SYN {t} 1"));
        line(out, &format!("GTC {t} 1 A"));
        line(out, &format!("BLP {t} 1 AL"));
        for list in ["FL", "AL", "BL", "RL"] {
            let entries: &[&User] = if list == "BL" { &[] } else { &contacts };
            if entries.is_empty() {
                line(out, &format!("LST {t} {list} 1 0 0"));
            }
            for (i, u) in entries.iter().enumerate() {
                let n = entries.len();
                line(out, &format!("LST {t} {list} 1 {} {n} {} {}", i + 1, u.email, u.friendly));
            }
        }
    }
}

/// Sends `text` to every visible user other than `from`.
fn broadcast(online: &std::collections::HashMap<&'static str, Presence>, from: &User, text: &str) {
    for other in online.values().filter(|p| p.user.email != from.email && p.status.is_some()) {
        other.peer.send(text.as_bytes().to_vec());
    }
}

impl Handler for NsConnection {
    fn handle(&mut self, now: Instant, cmd: &Command<'_>, out: &mut Vec<u8>) -> Flow {
        let args = args(cmd);
        let t = trid(&args).to_owned();
        let name = cmd.name();
        if name != "VER" && self.version.is_none() {
            // Clients must agree on a version first.
            line(out, &format!("715 {t}"));
            return Flow::Close;
        }
        let user = match &self.login {
            Login::Done(user) => Some(*user),
            _ => None,
        };
        match (name, user) {
            ("VER", _) => {
                let offered = &args[1.min(args.len())..];
                match VERSIONS.iter().find(|v| offered.iter().any(|o| o == *v)) {
                    Some(version) => {
                        self.version = Some(version);
                        line(out, &format!("VER {t} {version}"));
                    }
                    None => {
                        line(out, &format!("VER {t} 0"));
                        return Flow::Close;
                    }
                }
            }
            ("CVR", _) => line(
                out,
                &format!(
                    "CVR {t} 6.0.0602 6.0.0602 1.0.0000 http://msn-http.invalid/download http://msn-http.invalid/"
                ),
            ),
            ("INF", _) => line(out, &format!("INF {t} MD5")),
            ("USR", _) => return self.usr(&args, out),
            ("PNG", _) => line(out, "QNG 50"),
            ("OUT", _) => return Flow::Close,
            ("SYN", Some(user)) => Self::syn(user, &args, out),
            ("CHG", Some(user)) => self.chg(user, &args, out),
            ("XFR", Some(user)) if args.get(1).is_some_and(|a| a == "SB") => {
                let mut state = self.state.lock();
                let cookie = state.ticket(now, user.email, Admits::NewBoard);
                line(out, &format!("XFR {t} SB {} CKI {cookie}", state.sb_addr));
            }
            ("SYN" | "CHG" | "XFR", None) => line(out, &format!("715 {t}")),
            _ => line(out, &format!("200 {t}")),
        }
        Flow::Continue
    }

    fn disconnected(&mut self) {
        let Login::Done(user) = self.login else { return };
        let mut state = self.state.lock();
        // Only our own entry: a newer login of the same user replaced it.
        if state.online.get(user.email).is_some_and(|p| p.peer.id == self.peer.id) {
            if let Some(gone) = state.online.remove(user.email) {
                if gone.visible_status().is_some() {
                    broadcast(&state.online, user, &format!("FLN {}\r\n", user.email));
                }
            }
        }
    }
}
