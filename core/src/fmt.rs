//! Logging shim: the same call compiles to `defmt`, to `log`, or to nothing.
//!
//! Format strings must be literals using only `{}` so that both back-ends accept them.
//! With neither feature the arguments are still evaluated (as smoltcp's shim does), so a
//! variable used only for logging never turns into an "unused" warning.

#![allow(unused_macros)]

macro_rules! log_at {
    ($defmt:ident, $log:ident, $($arg:tt)+) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$defmt!($($arg)+);
        #[cfg(feature = "log")]
        ::log::$log!($($arg)+);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        {
            let _ = ::core::format_args!($($arg)+);
        }
    }};
}

macro_rules! trace { ($($arg:tt)+) => { log_at!(trace, trace, $($arg)+) }; }
macro_rules! debug { ($($arg:tt)+) => { log_at!(debug, debug, $($arg)+) }; }
macro_rules! info { ($($arg:tt)+) => { log_at!(info, info, $($arg)+) }; }
macro_rules! warn { ($($arg:tt)+) => { log_at!(warn, warn, $($arg)+) }; }
