//! Printing for the command lines of both binaries (issue 12): `frpc status | head -3` closes
//! stdout under the command. Rust ignores SIGPIPE, so `println!` would panic there; instead a
//! closed stdout ends the command quietly with status 141 (128 + SIGPIPE: what a shell reports
//! for a Go program, frp's, stopped by the same pipe). Messages to a closed stderr are dropped.

use std::io::Write;

/// The exit status of a command whose stdout was closed under it.
pub const CLOSED_PIPE_STATUS: i32 = 141;

/// Writes `args` and a newline to stdout; exits quietly when stdout is a closed pipe.
pub fn out_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        let code = if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED_PIPE_STATUS
        } else {
            1
        };
        std::process::exit(code);
    }
}

/// Writes `args` and a newline to stderr, if it can.
pub fn err_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` for command output: see [`out_line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::stdio::out_line(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics: see [`err_line`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::stdio::err_line(format_args!($($arg)*)) };
}
