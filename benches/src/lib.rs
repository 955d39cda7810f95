//! Shared fixtures for the msn-http benchmarks.
