//! natter, the terminal chat client.

// The modules are wired to the terminal and the network in the next steps.
#![allow(dead_code)]

mod event;
mod input;
mod render;
mod sanitize;
mod state;

fn main() {}
