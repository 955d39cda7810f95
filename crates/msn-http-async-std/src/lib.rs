//! Drives `msn-http-core` sessions over `futures-io` + `async-io`, serving async-std and smol alike.
#![forbid(unsafe_code)]
