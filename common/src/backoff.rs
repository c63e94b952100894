//! Exponential backoff for frpc's login retries (frp `client/service.go` `loopLoginUntilSuccess`):
//! starts at 1 s, doubles, capped at 10 s on the first run and 20 s on reconnects.

use std::time::Duration;

/// Doubling delay with a cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(start: Duration, max: Duration) -> Self {
        Backoff { next: start, max }
    }

    /// The delay to wait now; the following one doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(20));
        let got: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 20, 20]);
    }
}
