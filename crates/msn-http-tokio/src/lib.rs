//! Drives `msn-http-core` sessions over tokio TCP connections and timers.
#![forbid(unsafe_code)]
