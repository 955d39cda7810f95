//! Prints what each poll policy costs idle, and how fast it delivers pushed messages, against a
//! gateway that holds polls and one that does not (fake clock, 50 ms round trips):
//! `cargo run -p msn-http-testkit --example field_figures`.

use std::time::Duration;

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, PollPolicy};
use msn_http_testkit::{Quirks, Script, measure_idle};

#[allow(clippy::print_stdout)] // A figures program: printing is its job.
fn main() {
    let policies = [
        ("official (2 s)", PollPolicy::official()),
        ("adaptive (250 ms to 4 s)", PollPolicy::adaptive()),
        ("long poll (10 s)", PollPolicy::long_poll()),
    ];
    let mut out = String::from(
        "| poll policy | gateway | idle requests/min | p95 delivery | worst delivery |\n| --- | --- | ---: | ---: | ---: |\n",
    );
    for (name, policy) in policies {
        for hold in [true, false] {
            let mut config = ClientConfig::new(Endpoint::new("gw.test", 80).expect("valid"));
            config.poll_policy = policy;
            let quirks = Quirks { hold_polls: hold, ..Quirks::default() };
            let figures =
                measure_idle(config, Script::default().quirks(quirks), Duration::from_millis(50));
            let gateway = if hold { "holds polls" } else { "answers at once" };
            out.push_str(&format!(
                "| {name} | {gateway} | {:.1} | {:.2} s | {:.2} s |\n",
                figures.requests_per_minute,
                figures.p95_latency.as_secs_f64(),
                figures.max_latency.as_secs_f64(),
            ));
        }
    }
    print!("{out}");
}
