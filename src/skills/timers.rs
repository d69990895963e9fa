//! Timers: start, cancel, change, pause, resume, status.
//!
//! A timer is a [`TimerRecord`] in the store, so it survives a restart with the right
//! remaining time (running timers keep their wall-clock deadline; paused ones their
//! remaining time). Firing belongs to a long-running Serena, which watches the store's
//! active timers; this module only records what the user asked for.

use crate::router::{Intent, Match};
use crate::store::{to_unix_ms, TimerRecord, TimerState};

use super::{say_duration, Env, Reply, SkillError};

fn named(t: &TimerRecord) -> String {
    t.name
        .as_deref()
        .map(|n| format!(" named {n}"))
        .unwrap_or_default()
}

/// Which active timer a command means: by name, by its starting duration, else the one
/// that ends soonest. `None` when there is none.
fn target(m: &Match, active: &[TimerRecord], now_ms: u64) -> Option<TimerRecord> {
    if let Some(name) = m.slots.text("name") {
        let name = name.trim().to_lowercase();
        if let Some(t) = active
            .iter()
            .find(|t| t.name.as_deref().is_some_and(|n| n.to_lowercase() == name))
        {
            return Some(t.clone());
        }
        return None;
    }
    if let Some(d) = m.slots.start_duration() {
        let ms = d.as_millis() as u64;
        return active.iter().find(|t| t.duration_ms == ms).cloned();
    }
    active
        .iter()
        .min_by_key(|t| t.remaining_ms(now_ms))
        .cloned()
}

/// Handle a timer intent.
///
/// # Errors
/// [`SkillError::Store`] when the store fails.
pub fn handle(m: &Match, env: &Env<'_>) -> Result<Reply, SkillError> {
    let now_ms = to_unix_ms(env.now);
    let store = env.store;
    let active = store.active_timers()?;
    let none = || Ok(Reply::say("There is no timer running."));
    match m.intent {
        Intent::StartTimer => {
            let Some(duration) = m.slots.duration().filter(|d| !d.is_zero()) else {
                return Ok(Reply::say("For how long should I set the timer?"));
            };
            let secs = duration.as_secs();
            if secs > 24 * 3600 * 7 {
                return Ok(Reply::say("Timers can run for at most a week."));
            }
            let name = m
                .slots
                .text("name")
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty());
            let timer = store.insert_timer(TimerRecord::new_running(
                name,
                duration.as_millis() as u64,
                now_ms,
            ))?;
            let text = format!("Timer set for {}{}", say_duration(secs), named(&timer));
            Ok(Reply::say(text)
                .with("timer_id", timer.id)
                .with("duration_s", secs))
        }
        Intent::CancelAllTimers => {
            let mut n = 0;
            for mut t in active {
                t.state = TimerState::Cancelled;
                store.update_timer(&t)?;
                n += 1;
            }
            Ok(Reply::say(match n {
                0 => "No timers were canceled.".to_string(),
                1 => "Canceled 1 timer.".to_string(),
                n => format!("Canceled {n} timers."),
            })
            .with("canceled", n))
        }
        Intent::CancelTimer => {
            let Some(mut t) = target(m, &active, now_ms) else {
                return none();
            };
            t.state = TimerState::Cancelled;
            store.update_timer(&t)?;
            Ok(Reply::say("Timer cancelled").with("timer_id", t.id))
        }
        Intent::IncreaseTimer | Intent::DecreaseTimer => {
            let Some(delta) = m.slots.duration().filter(|d| !d.is_zero()) else {
                return Ok(Reply::say("By how much?"));
            };
            let Some(mut t) = target(m, &active, now_ms) else {
                return none();
            };
            let delta_ms = delta.as_millis() as u64;
            let increase = m.intent == Intent::IncreaseTimer;
            match t.state {
                TimerState::Paused => {
                    let left = t.paused_remaining_ms.unwrap_or(0);
                    t.paused_remaining_ms = Some(if increase {
                        left + delta_ms
                    } else {
                        left.saturating_sub(delta_ms)
                    });
                }
                _ => {
                    // Move the deadline: change the duration, keep the start.
                    let left = t.remaining_ms(now_ms);
                    let new_left = if increase {
                        left + delta_ms
                    } else {
                        left.saturating_sub(delta_ms)
                    };
                    let elapsed = now_ms.saturating_sub(t.started_at_ms);
                    t.duration_ms = elapsed + new_left;
                }
            }
            store.update_timer(&t)?;
            let what = say_duration(delta.as_secs());
            Ok(Reply::say(if increase {
                format!("{what} added to timer{}", named(&t))
            } else {
                format!("{what} removed from timer{}", named(&t))
            })
            .with("timer_id", t.id)
            .with("remaining_s", t.remaining_ms(now_ms) / 1000))
        }
        Intent::PauseTimer => {
            let running: Vec<TimerRecord> = active
                .into_iter()
                .filter(|t| t.state == TimerState::Running)
                .collect();
            let Some(mut t) = target(m, &running, now_ms) else {
                return none();
            };
            t.pause(now_ms);
            store.update_timer(&t)?;
            Ok(Reply::say("Timer paused").with("timer_id", t.id))
        }
        Intent::UnpauseTimer => {
            let paused: Vec<TimerRecord> = active
                .into_iter()
                .filter(|t| t.state == TimerState::Paused)
                .collect();
            let Some(mut t) = target(m, &paused, now_ms) else {
                return Ok(Reply::say("There is no paused timer."));
            };
            t.resume(now_ms);
            store.update_timer(&t)?;
            Ok(Reply::say("Timer resumed").with("timer_id", t.id))
        }
        Intent::TimerStatus => {
            if active.is_empty() {
                return Ok(Reply::say("No timers."));
            }
            let picked = if m.slots.text("name").is_some() || m.slots.start_duration().is_some() {
                target(m, &active, now_ms).into_iter().collect::<Vec<_>>()
            } else {
                active.clone()
            };
            let Some(next) = picked.iter().min_by_key(|t| t.remaining_ms(now_ms)) else {
                return none();
            };
            let left = say_duration(next.remaining_ms(now_ms).div_ceil(1000));
            let text = match (picked.len(), next.state) {
                (1, TimerState::Paused) => {
                    format!("Timer{} is paused with {left} left.", named(next))
                }
                (1, _) => format!("{left} left on the timer{}.", named(next)),
                (n, _) => format!("{n} timers. The next one{} ends in {left}.", named(next)),
            };
            Ok(Reply::say(text).with("timers", picked.len()))
        }
        _ => Ok(Reply::default()),
    }
}
