//! The live progress line on a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(250);

/// Redraws one status line on stderr until stopped; does nothing off a terminal.
pub struct Progress {
    stop: Arc<(Mutex<bool>, Condvar)>,
    drew: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing the line `render` gives (from the seconds since start) if stderr
    /// is a terminal and `enabled`.
    pub fn start(enabled: bool, render: impl Fn(f64) -> String + Send + 'static) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let drew = Arc::new(AtomicBool::new(false));
        let handle = (enabled && std::io::stderr().is_terminal()).then(|| {
            let stop = Arc::clone(&stop);
            let drew = Arc::clone(&drew);
            std::thread::spawn(move || draw_until_stopped(&render, &stop, &drew))
        });
        Self { stop, drew, handle }
    }

    /// Stops drawing and clears the line.
    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let (lock, cvar) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
            cvar.notify_all();
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        if self.drew.load(Ordering::Relaxed) {
            eprint!("\r\x1b[2K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn draw_until_stopped(
    render: &dyn Fn(f64) -> String,
    stop: &(Mutex<bool>, Condvar),
    drew: &AtomicBool,
) {
    let started = Instant::now();
    let (lock, cvar) = stop;
    let Ok(mut stopped) = lock.lock() else { return };
    loop {
        let result = cvar.wait_timeout(stopped, EVERY);
        let Ok((guard, _)) = result else { return };
        stopped = guard;
        if *stopped {
            return;
        }
        let line = render(started.elapsed().as_secs_f64().max(1e-9));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        drew.store(true, Ordering::Relaxed);
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
