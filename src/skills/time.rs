//! HassGetCurrentTime and HassGetCurrentDate, in the machine's local time zone.

use chrono::{DateTime, Datelike, Local, Timelike};

use super::{Env, Reply};

fn local(env: &Env<'_>) -> DateTime<Local> {
    DateTime::<Local>::from(env.now)
}

/// "3:07 PM", as Home Assistant says it.
pub fn say_time(hour: u32, minute: u32) -> String {
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!("{h12}:{minute:02} {ampm}")
}

/// "November 22nd, 2026".
pub fn say_date(year: i32, month: u32, day: u32) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let suffix = match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    let month = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("?");
    format!("{month} {day}{suffix}, {year}")
}

/// The current time.
pub fn current_time(env: &Env<'_>) -> Reply {
    let now = local(env);
    Reply::say(say_time(now.hour(), now.minute())).with("time", now.format("%H:%M").to_string())
}

/// Today's date.
pub fn current_date(env: &Env<'_>) -> Reply {
    let now = local(env);
    Reply::say(say_date(now.year(), now.month(), now.day()))
        .with("date", now.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates_read_like_home_assistant() {
        assert_eq!(say_time(0, 5), "12:05 AM");
        assert_eq!(say_time(9, 30), "9:30 AM");
        assert_eq!(say_time(12, 0), "12:00 PM");
        assert_eq!(say_time(15, 7), "3:07 PM");
        assert_eq!(say_date(2026, 11, 22), "November 22nd, 2026");
        assert_eq!(say_date(2026, 1, 1), "January 1st, 2026");
        assert_eq!(say_date(2026, 3, 13), "March 13th, 2026");
        assert_eq!(say_date(2026, 5, 23), "May 23rd, 2026");
        assert_eq!(say_date(2026, 7, 11), "July 11th, 2026");
    }
}
