//! End-to-end tests.

mod systemd;
