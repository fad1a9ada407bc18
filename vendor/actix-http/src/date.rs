use std::{
    cell::Cell,
    fmt::{self, Write},
    time::{Duration, Instant, SystemTime},
};

/// "Thu, 01 Jan 1970 00:00:00 GMT".len()
pub(crate) const DATE_VALUE_LENGTH: usize = 29;

#[derive(Clone, Copy)]
pub(crate) struct Date {
    pub(crate) bytes: [u8; DATE_VALUE_LENGTH],
    pos: usize,
}

impl Date {
    fn new() -> Date {
        let mut date = Date {
            bytes: [0; DATE_VALUE_LENGTH],
            pos: 0,
        };
        date.update();
        date
    }

    fn update(&mut self) {
        self.pos = 0;
        write!(self, "{}", httpdate::HttpDate::from(SystemTime::now())).unwrap();
    }
}

impl fmt::Write for Date {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let len = s.len();
        self.bytes[self.pos..self.pos + len].copy_from_slice(s.as_bytes());
        self.pos += len;
        Ok(())
    }
}

/// The `Date` header's value, made when a response needs it and kept for
/// 500 millis (the value changes once a second).
///
/// pynchy-status's one change to actix-http 3.20.0: upstream refreshes it
/// with a 500 millis timer task per worker, which wakes an idle server
/// several times a second (actix/actix-web#3411).
pub(crate) struct DateService {
    current: Cell<(Date, Instant)>,
}

impl DateService {
    pub(crate) fn new() -> Self {
        DateService {
            current: Cell::new((Date::new(), Instant::now())),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::now()
    }

    pub(crate) fn with_date<F: FnMut(&Date)>(&self, mut f: F) {
        let (date, made) = self.current.get();
        let now = Instant::now();
        if now.saturating_duration_since(made) < Duration::from_millis(500) {
            f(&date);
            return;
        }
        let date = Date::new();
        self.current.set((date, now));
        f(&date);
    }
}

impl fmt::Debug for DateService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DateService").finish_non_exhaustive()
    }
}
