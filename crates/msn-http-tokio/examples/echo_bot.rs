//! An echo bot on tokio: signs in to an MSN network through an HTTP gateway and sends back
//! every text message it gets on the switchboards it is invited to.
//!
//! Against the built-in server (`msn-http gateway --listen 127.0.0.1:8080 --builtin`):
//!
//! ```text
//! cargo run -p msn-http-tokio --example echo_bot -- http://127.0.0.1:8080 bob@example.com bobpass
//! ```
//!
//! then talk to bob@example.com, for example with the `byte_stream` example. The fourth
//! argument is how many messages the bot echoes before it signs out (10).
use msn_http_tokio::{
    Client, ClientConfig, CommandWriter, OwnedCommand, PollPolicy, Target, md5_login_response,
    message_text, text_message,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let email = args.next().unwrap_or_else(|| "bob@example.com".into());
    let password = args.next().unwrap_or_else(|| "bobpass".into());
    let messages = args.next().map_or(Ok(10), |n| n.parse())?;
    run(&url, &email, &password, messages).await
}

/// Signs in as `email`, echoes `messages` text messages (one conversation at a time) and
/// signs out.
pub(crate) async fn run(
    url: &str,
    email: &str,
    password: &str,
    messages: usize,
) -> Result<(), Error> {
    // Long polls: what the server sends arrives at once, not at the next poll.
    let config = ClientConfig::from_url(url)?.with_poll_policy(PollPolicy::long_poll());
    let mut ns =
        Client::connect_with(config.clone(), Target::notification("messenger.hotmail.com")).await?;
    let mut msnp = CommandWriter::new();
    ns.send(&msnp.command("VER", &["MSNP7", "MSNP6", "MSNP5", "CVR0"])?).await?;
    reply(&mut ns, "VER").await?;
    ns.send(&msnp.command("USR", &["MD5", "I", email])?).await?;
    let salt = reply(&mut ns, "USR").await?.arg(3).ok_or("no salt")?.into_owned();
    ns.send(&msnp.command("USR", &["MD5", "S", &md5_login_response(&salt, password)])?).await?;
    reply(&mut ns, "USR").await?;
    ns.send(&msnp.command("CHG", &["NLN"])?).await?;
    let mut left = messages;
    while left > 0 {
        let cmd = ns.recv().await?;
        match cmd.name() {
            "RNG" => left -= echo(config.clone(), email, &cmd, left).await?,
            "OUT" => return Ok(()), // signed out by the server
            _ => {}
        }
    }
    let end = ns.close().await;
    if end.is_clean() { Ok(()) } else { Err(end.into()) }
}

/// Joins the switchboard of `rng` (`RNG session address CKI cookie ...`) and echoes text
/// messages until someone leaves or `limit` are echoed; returns how many were.
async fn echo(
    config: ClientConfig,
    email: &str,
    rng: &OwnedCommand,
    limit: usize,
) -> Result<usize, Error> {
    let (Some(session), Some(address), Some(cookie)) = (rng.arg(0), rng.arg(1), rng.arg(3)) else {
        return Err(format!("unreadable invitation: {rng}").into());
    };
    let mut sb = Client::connect_with(config, Target::switchboard(address)).await?;
    let mut msnp = CommandWriter::new();
    sb.send(&msnp.command("ANS", &[email, &cookie, &session])?).await?;
    let mut echoed = 0;
    while echoed < limit {
        let cmd = sb.recv().await?;
        match (cmd.name(), cmd.payload().and_then(message_text)) {
            ("MSG", Some(text)) => {
                let echo = text_message(&String::from_utf8_lossy(text));
                sb.send(&msnp.payload_command("MSG", &["N"], &echo)?).await?;
                echoed += 1;
            }
            ("BYE", _) => break,
            _ => {}
        }
    }
    sb.close().await;
    Ok(echoed)
}

/// The next command named `name`, skipping others; an error reply fails.
async fn reply(client: &mut Client, name: &str) -> Result<OwnedCommand, Error> {
    loop {
        let cmd = client.recv().await?;
        if cmd.is_error() {
            return Err(format!("the server refused: {cmd}").into());
        }
        if cmd.name() == name {
            return Ok(cmd);
        }
    }
}
