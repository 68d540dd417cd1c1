//! The `seqwin` binary: the whole program is [`seqwin::cli::main_with_args`]
//! (shared with the Python wheel's `seqwin` console script).

use std::process::ExitCode;

/// A failed allocation ends the run with a message and removes its staging
/// directory and lock, instead of aborting.
#[global_allocator]
static ALLOCATOR: seqwin::oom::ExitOnOom = seqwin::oom::ExitOnOom;

fn main() -> ExitCode {
    // SIGINT, SIGTERM and SIGHUP cancel a run cleanly (staging and lock removed).
    seqwin::cancel::install();
    let code = seqwin::cli::main_with_args(std::env::args_os());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
