//! Cancellation by SIGINT, SIGTERM and SIGHUP (Ctrl-C, `docker stop`,
//! Slurm, a closed terminal).
//!
//! The CLI calls [`install`] once. The handlers only record the signal in an
//! atomic; a run [`arm`]s them for its duration and checks [`interrupted`]
//! between row groups, returning [`Error::Interrupted`] so that the ordinary
//! error path removes the staging directory and the lock (exit code
//! 128 + signal). Outside an armed run a signal keeps its default action
//! (the process ends at once, as before). A second signal while a run is
//! cleaning up ends the process at once with the same exit code.
//!
//! ```text
//!   signal ──▶ handler: armed? ──no──▶ default action (re-raised)
//!                          │yes
//!                          ▼
//!              PENDING = sig (second one: _exit(128 + sig))
//!                          │
//!   run: interrupted()? ───┘ between row groups ──▶ Err(Interrupted) ──▶ cleanup
//! ```

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::error::{Error, Result};

/// The signals that cancel a run.
pub const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The first signal received while armed (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);
/// Whether a run is in progress (signals are then recorded, not fatal).
static ARMED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if !ARMED.load(Ordering::SeqCst) {
        // SAFETY: signal and raise are async-signal-safe; the default action
        // runs once this handler returns (the signal is blocked until then).
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        return;
    }
    if PENDING
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // A second signal while cleaning up: leave at once.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handlers for [`SIGNALS`] (the CLI calls this once, before
/// any thread starts). Library users who want cancellation call it too.
pub fn install() {
    for sig in SIGNALS {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler
        // only touches atomics and async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Makes signals cancel the current run instead of ending the process until
/// the guard drops.
pub fn arm() -> Armed {
    PENDING.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    Armed(())
}

/// Guard of [`arm`]: disarms on drop (a signal received while armed stays
/// pending, so [`interrupted`] still reports it).
#[derive(Debug)]
pub struct Armed(());

impl Drop for Armed {
    fn drop(&mut self) {
        ARMED.store(false, Ordering::SeqCst);
    }
}

/// Cancels the run in progress as if `signal` had been received: for hosts
/// that catch signals themselves (the Python package turns the
/// interpreter's KeyboardInterrupt into this).
pub fn request(signal: i32) {
    let _ = PENDING.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

/// `Err(Error::Interrupted)` once a cancelling signal has been received.
///
/// # Errors
/// [`Error::Interrupted`] naming the signal.
pub fn interrupted() -> Result<()> {
    match PENDING.load(Ordering::SeqCst) {
        0 => Ok(()),
        signal => Err(Error::Interrupted { signal }),
    }
}

/// The conventional name of a signal (`SIGINT`), for messages.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}
