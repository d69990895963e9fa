//! Slot values captured by a match.

use std::fmt;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// One slot value: free text or a number.
///
/// Serializes untagged, as Home Assistant's tests write them:
/// `{"minutes": 10, "name": "pizza"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum SlotValue {
    /// A whole number (range lists, numeric `out:` values).
    Int(i64),
    /// A number with a fraction (range lists with a `multiplier`).
    Float(f64),
    /// Text: a list value's `out:` or the words a wildcard captured, as the
    /// user wrote them (case and inner punctuation kept).
    Text(String),
}

impl SlotValue {
    /// The value as a string, when it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SlotValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a whole number, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            SlotValue::Int(i) => Some(i),
            SlotValue::Float(f) if f.fract() == 0.0 => Some(f as i64),
            _ => None,
        }
    }

    /// The value as a number, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            SlotValue::Int(i) => Some(i as f64),
            SlotValue::Float(f) => Some(f),
            SlotValue::Text(_) => None,
        }
    }
}

impl fmt::Display for SlotValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotValue::Int(i) => write!(f, "{i}"),
            SlotValue::Float(x) => write!(f, "{x}"),
            SlotValue::Text(s) => f.write_str(s),
        }
    }
}

impl From<&str> for SlotValue {
    fn from(s: &str) -> Self {
        SlotValue::Text(s.to_owned())
    }
}

impl From<i64> for SlotValue {
    fn from(i: i64) -> Self {
        SlotValue::Int(i)
    }
}

/// Slots of a match, in the order they were filled; serializes as a JSON
/// object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slots(Vec<(String, SlotValue)>);

impl Slots {
    /// No slots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name`, replacing an earlier value of the same name in place.
    pub fn insert(&mut self, name: impl Into<String>, value: SlotValue) {
        let name = name.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of slot `name`.
    pub fn get(&self, name: &str) -> Option<&SlotValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Text value of slot `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(SlotValue::as_str)
    }

    /// Whole-number value of slot `name`.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(SlotValue::as_i64)
    }

    /// Slots in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SlotValue)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The duration given by Home Assistant's timer slots `hours`, `minutes`
    /// and `seconds` (`None` when none of them is set).
    pub fn duration(&self) -> Option<Duration> {
        self.duration_with_prefix("")
    }

    /// The duration that identifies an existing timer: `start_hours`,
    /// `start_minutes` and `start_seconds` ("cancel the 5 minute timer").
    pub fn start_duration(&self) -> Option<Duration> {
        self.duration_with_prefix("start_")
    }

    fn duration_with_prefix(&self, prefix: &str) -> Option<Duration> {
        let mut total = 0.0;
        let mut any = false;
        for (unit, seconds) in [("hours", 3600.0), ("minutes", 60.0), ("seconds", 1.0)] {
            if let Some(v) = self
                .get(&format!("{prefix}{unit}"))
                .and_then(SlotValue::as_f64)
            {
                total += v * seconds;
                any = true;
            }
        }
        (any && total >= 0.0).then(|| Duration::from_secs_f64(total))
    }
}

impl Serialize for Slots {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'a> IntoIterator for &'a Slots {
    type Item = (&'a str, &'a SlotValue);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a SlotValue)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}
