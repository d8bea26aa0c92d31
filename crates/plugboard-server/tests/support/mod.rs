//! Test support shared by integration tests (include with `mod support;`).
#![allow(dead_code)]

pub mod idp;
