//! Simulated time: wall-clock time sped up by a factor, so that a realistic
//! 90 s ActiveGate start takes under a second in a test at speed 100.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Maps real time to simulated time. Simulated time starts at the real
/// wall-clock time of creation and then runs `speed` times faster.
#[derive(Debug, Clone)]
pub struct Clock {
    started: Instant,
    epoch_at_start: f64,
    speed: f64,
}

impl Clock {
    pub fn new(speed: f64) -> Self {
        let epoch_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Self {
            started: Instant::now(),
            epoch_at_start,
            speed,
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Simulated seconds since the epoch.
    pub fn now(&self) -> f64 {
        self.epoch_at_start + self.started.elapsed().as_secs_f64() * self.speed
    }

    /// Simulated milliseconds since the epoch (CloudWatch Logs timestamps).
    pub fn now_millis(&self) -> i64 {
        (self.now() * 1000.0) as i64
    }

    /// How long to wait in real time for `sim_seconds` of simulated time.
    pub fn real(&self, sim_seconds: f64) -> Duration {
        Duration::from_secs_f64((sim_seconds / self.speed).max(0.0))
    }
}
