//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::size::parse_size;

#[derive(Debug, Parser)]
#[command(
    name = "migrator",
    version,
    about = "Moves users between the R2-SQLite path and their Durable Objects, through the Worker's admin API"
)]
pub struct Cli {
    /// Base URL of the Worker, e.g. http://127.0.0.1:8787 or https://<worker>.<account>.workers.dev
    #[arg(
        long,
        env = "MIGRATOR_ENDPOINT",
        global = true,
        default_value = "http://127.0.0.1:8787"
    )]
    pub endpoint: String,

    /// The Worker's ADMIN_TOKEN secret
    #[arg(
        long,
        env = "MIGRATOR_TOKEN",
        global = true,
        hide_env_values = true,
        default_value = ""
    )]
    pub token: String,

    /// A PEM file of CA certificates to trust besides the system's (a private CA)
    #[arg(long, env = "MIGRATOR_CACERT", global = true)]
    pub cacert: Option<PathBuf>,

    /// Seconds to wait for a connection
    #[arg(long, global = true, default_value_t = 10)]
    pub connect_timeout: u64,

    /// Seconds to wait for an answer (a move of a large user takes a while)
    #[arg(long, global = true, default_value_t = 300)]
    pub read_timeout: u64,

    /// How often a call that can safely be repeated is tried again after a connection error,
    /// 429 or 5xx, with a growing, jittered wait
    #[arg(long, global = true, default_value_t = 4)]
    pub retries: u32,

    /// Print JSON (one object per line) instead of tables
    #[arg(long, global = true)]
    pub json: bool,

    /// Make bulk changes (migrate --all, rollback --all, prune) without asking; without a
    /// terminal to ask on, they are refused unless this is given
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Checks that the Worker answers `GET /api/health`.
    Health,
    /// Users still on the R2 path, largest first; those over 1 MB are marked.
    Plan {
        /// Only users at least this large (512KB, 1MB, 1.5MiB)
        #[arg(long, value_parser = parse_size)]
        min_size: Option<u64>,
        /// At most this many users
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Moves users to their Durable Objects.
    Migrate(Batch),
    /// Moves users back to the R2 path.
    Rollback(Batch),
    /// Counts users by state, or shows one user's full status.
    Status {
        user: Option<String>,
        /// Every user whose last move failed, with the step and the reason
        #[arg(long, conflicts_with = "user")]
        failed: bool,
        /// Users asked at the same time (--failed asks each user's object)
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
    },
    /// The fleet check before a rollout: what each user's R2 database meets on the R2 path
    /// (served as is, upgraded on first use, refused with the reason, moves only in chunks,
    /// already moved) and what would stop its move, without waking any Durable Object. Exit
    /// status 1 when any user is refused or could not be scanned.
    ///
    /// Calls: the listing, one per page (with --all or --min-size; a page asks for 1,000 users,
    /// R2 may return fewer), then at most one scan per user, none for a user the listing shows
    /// moved or above the R2 path's ceiling. The scan reads the user's R2 object once and never
    /// calls their object.
    Scan {
        #[command(flatten)]
        selection: Selection,
        /// Users scanned at the same time
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
    },
    /// Checks that a migrated user's object passes its integrity check and, when nothing was
    /// written since the migration, agrees with its R2 copy.
    Verify {
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Writes a user's authoritative database to a file.
    Export {
        user: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Checks a SQLite file here, then stores it as the user's R2 database.
    Import { user: String, file: PathBuf },
    /// Deletes old backups and turns long-migrated R2 copies into tombstones.
    Prune {
        /// Age, in days (`30d` or `30`)
        #[arg(long, value_parser = parse_days)]
        older_than: u64,
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which users a command takes: those named, or every user the command applies to.
#[derive(Debug, Args)]
pub struct Selection {
    /// These users (else --all)
    pub users: Vec<String>,
    /// Every user the command applies to (migrate: those on R2; rollback: those moved; scan:
    /// those with a database in R2)
    #[arg(long, conflicts_with = "users")]
    pub all: bool,
    /// Only users at least this large (512KB, 1MB, 1.5MiB)
    #[arg(long, value_parser = parse_size)]
    pub min_size: Option<u64>,
    /// A stable cohort: users whose id hashes below this percentage (1% is inside 10%)
    #[arg(long, value_parser = parse_percent)]
    pub percent: Option<f64>,
}

/// Which users a batch command takes, and how.
#[derive(Debug, Args)]
pub struct Batch {
    #[command(flatten)]
    pub selection: Selection,
    /// Users moved at the same time
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Show who would be moved, move nobody
    #[arg(long)]
    pub dry_run: bool,
    /// The journal that lets an interrupted run resume (default: one per endpoint in
    /// $XDG_STATE_HOME/reel-ballers-migrator/, else ~/.local/state/reel-ballers-migrator/)
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Rollback: also users whose database is above what the R2 path serves (they then get
    /// 507 until they migrate again)
    #[arg(long)]
    pub force: bool,
    /// The bytes of rows each step of a chunked move sends or reads (at most 4MiB)
    #[arg(long, default_value = "2MiB", value_parser = parse_batch_size)]
    pub batch_size: u64,
}

fn parse_batch_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if (1..=admin_api::in_chunks::MAX_BATCH_BYTES as u64).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!("'{text}' is not from 1 byte to 4MiB"))
    }
}

fn parse_days(text: &str) -> Result<u64, String> {
    text.trim_end_matches('d')
        .parse()
        .map_err(|_| format!("'{text}' is not a number of days (e.g. 30d)"))
}

fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("'{text}' is not a percentage from 0 to 100")),
    }
}
