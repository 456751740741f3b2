//! Standard output that tolerates a reader going away: `houba plan | head -1` must end quietly,
//! not panic in `print!` nor print an error about a broken pipe.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `text` to standard output. Once the reader has closed the pipe, further output is
/// dropped silently: nobody is reading it.
pub fn write(text: &str) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        } else {
            // Another failure (a full disk behind a redirect): say it once, on stderr.
            CLOSED.store(true, Ordering::Relaxed);
            eprintln!("houba: cannot write to standard output: {e}");
        }
    }
}

/// `print!` through [`write`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write(&format!($($arg)*)) };
}

/// `println!` through [`write`].
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::output::write("\n") };
    ($($arg:tt)*) => { $crate::cli::output::write(&format!("{}\n", format!($($arg)*))) };
}
