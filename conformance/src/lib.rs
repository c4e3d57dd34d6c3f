//! Conformance harness for natter.
