//! `migrator`: the operators' command-line tool for moving users between the R2-SQLite path and
//! their Durable Objects, through the Worker's admin API.
//!
//! `cohort` chooses, `client` asks (`pool` many at once), `journal` remembers, `progress`
//! reports; `moves` moves users (`chunked_move` one too large for one step), `scan` checks
//! them; [`commands`] runs each command over them;
//! `main.rs` parses the command line, makes the client and sets the exit status.

pub mod chunked_move;
pub mod cli;
pub mod client;
pub mod cohort;
pub mod commands;
pub mod journal;
pub mod moves;
pub mod pool;
pub mod progress;
pub mod scan;
pub mod size;
