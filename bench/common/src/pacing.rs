//! Open-loop pacing: sends on a fixed timetable (`rate` per second), each started on its own so a slow answer never
//! delays the next send. Latency counted from a send's *due* time includes the time the server makes new requests
//! wait, or the generator falls behind, instead of hiding it (no coordinated omission).
//!
//! The timetable is kept by a [`Pacer`] on a blocking thread that sleeps with the OS timer (far finer than the
//! async runtime's millisecond wheel, without spinning); it hands out each due send with a permit of the in-flight
//! limit, and skips (and counts) a send that is due while the limit is reached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::latency::Latency;

/// Delay before the first due send, so the timetable does not start in the past.
const START_DELAY: Duration = Duration::from_millis(20);

/// Checks the options of an open-loop run.
pub fn check_open_loop(rate: f64, duration: Duration, max_in_flight: usize) -> Result<()> {
    ensure!(
        rate.is_finite() && rate > 0.0,
        "--rate must be a positive number"
    );
    ensure!(duration > Duration::ZERO, "--duration must be positive");
    ensure!(max_in_flight > 0, "--max-in-flight must be positive");
    Ok(())
}

/// Send `i` is due at `start + i / rate`; the first `warmup` sends are not measured, the `measured` after them are.
#[derive(Debug, Clone, Copy)]
pub struct Timetable {
    pub start: Instant,
    pub rate: f64,
    pub warmup: u64,
    pub measured: u64,
}

impl Timetable {
    /// `rate` sends per second for `warmup` and then `duration`, starting shortly from now ([`Pacer::new`] starts
    /// it afresh).
    pub fn new(rate: f64, duration: Duration, warmup: Duration) -> Self {
        Self {
            start: Instant::now() + START_DELAY,
            rate,
            warmup: (rate * warmup.as_secs_f64()).round() as u64,
            measured: (rate * duration.as_secs_f64()).round() as u64,
        }
    }

    pub fn total(&self) -> u64 {
        self.warmup + self.measured
    }

    pub fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.rate)
    }

    pub fn is_measured(&self, index: u64) -> bool {
        index >= self.warmup
    }
}

/// A send that is due now. It holds a place of the in-flight limit until dropped: keep it until the answer came.
pub struct Slot {
    /// Position in the timetable.
    pub index: u64,
    pub due: Instant,
    pub measured: bool,
    _permit: OwnedSemaphorePermit,
}

/// What the pacer saw.
pub struct Pacing {
    /// Sends made, warm-up included.
    pub sent: u64,
    /// Measured sends skipped because the in-flight limit was reached.
    pub skipped: u64,
    /// How late measured sends went out compared with their due time.
    pub lag: Latency,
    /// Latest any send (warm-up included) went out compared with its due time.
    pub lag_max: Duration,
    /// When the last send went out.
    pub last_send: Option<Instant>,
}

/// Keeps a timetable on a blocking thread: [`Pacer::next_due`] sleeps until the next send is due and hands it out,
/// [`Pacer::send`] notes that it goes out. Bounded by the timetable's length.
pub struct Pacer {
    timetable: Timetable,
    in_flight: Arc<Semaphore>,
    next: u64,
    pacing: Pacing,
}

impl Pacer {
    /// Starts `timetable` 20 ms from now (so the first send is not already late), with at most `max_in_flight` sends
    /// outstanding.
    pub fn new(timetable: Timetable, max_in_flight: usize) -> Result<Self> {
        Ok(Self {
            timetable: Timetable {
                start: Instant::now() + START_DELAY,
                ..timetable
            },
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            next: 0,
            pacing: Pacing {
                sent: 0,
                skipped: 0,
                lag: Latency::new()?,
                lag_max: Duration::ZERO,
                last_send: None,
            },
        })
    }

    /// The timetable as started.
    pub fn timetable(&self) -> Timetable {
        self.timetable
    }

    /// Sleeps until the next send is due and returns it; sends due while the in-flight limit is reached are
    /// skipped. `None` at the end of the timetable.
    pub fn next_due(&mut self) -> Option<Slot> {
        while self.next < self.timetable.total() {
            let index = self.next;
            self.next += 1;
            let due = self.timetable.due(index);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let measured = self.timetable.is_measured(index);
            match Arc::clone(&self.in_flight).try_acquire_owned() {
                Ok(permit) => {
                    return Some(Slot {
                        index,
                        due,
                        measured,
                        _permit: permit,
                    });
                }
                Err(_) => self.pacing.skipped += u64::from(measured),
            }
        }
        None
    }

    /// Notes that `slot` goes out now, and returns that time.
    pub fn send(&mut self, slot: &Slot) -> Instant {
        let sent = Instant::now();
        let lag = sent.saturating_duration_since(slot.due);
        self.pacing.sent += 1;
        self.pacing.last_send = Some(sent);
        self.pacing.lag_max = self.pacing.lag_max.max(lag);
        if slot.measured {
            self.pacing.lag.record(lag);
        }
        sent
    }

    pub fn finish(self) -> Pacing {
        self.pacing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_warmup_and_measured_sends() {
        let timetable = Timetable::new(100.0, Duration::from_secs(2), Duration::from_millis(500));
        assert_eq!((timetable.warmup, timetable.measured), (50, 200));
        assert_eq!(timetable.total(), 250);
        assert!(!timetable.is_measured(49) && timetable.is_measured(50));
        assert_eq!(
            timetable.due(150) - timetable.start,
            Duration::from_millis(1500)
        );
        assert!(check_open_loop(100.0, Duration::from_secs(1), 1).is_ok());
        assert!(check_open_loop(f64::NAN, Duration::from_secs(1), 1).is_err());
        assert!(check_open_loop(100.0, Duration::ZERO, 1).is_err());
        assert!(check_open_loop(100.0, Duration::from_secs(1), 0).is_err());
    }

    #[test]
    fn skips_sends_due_beyond_the_in_flight_limit() {
        // 10 sends at 1000/s, the first 2 of them warm-up, one in flight at most; the first is never answered.
        let timetable = Timetable::new(1000.0, Duration::from_millis(8), Duration::from_millis(2));
        let mut pacer = Pacer::new(timetable, 1).unwrap();
        let timetable = pacer.timetable();
        let mut outstanding = Vec::new();
        while let Some(slot) = pacer.next_due() {
            assert!(Instant::now() >= slot.due);
            pacer.send(&slot);
            outstanding.push(slot);
        }
        let indexes: Vec<u64> = outstanding.iter().map(|slot| slot.index).collect();
        assert_eq!(indexes, vec![0]);
        let pacing = pacer.finish();
        assert_eq!(
            (pacing.sent, pacing.skipped),
            (1, 8),
            "the skipped warm-up send is not counted"
        );
        assert_eq!(pacing.lag.count(), 0, "the warm-up send is not measured");
        assert!(pacing.last_send.is_some_and(|t| t >= timetable.due(0)));
    }

    #[test]
    fn measures_the_lag_of_measured_sends() {
        let timetable = Timetable::new(1000.0, Duration::from_millis(5), Duration::from_millis(2));
        let mut pacer = Pacer::new(timetable, 100).unwrap();
        let mut sent = 0;
        while let Some(slot) = pacer.next_due() {
            pacer.send(&slot);
            sent += 1;
        }
        assert_eq!(sent, 7);
        let pacing = pacer.finish();
        assert_eq!((pacing.sent, pacing.skipped), (7, 0));
        assert_eq!(pacing.lag.count(), 5);
    }
}
