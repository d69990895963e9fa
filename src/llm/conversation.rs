//! Conversation memory: the last turns, so a follow-up question has its context.
//!
//! The turns live in the store (setting [`CONVERSATION_SETTING`]), so `serena ask` in one
//! process remembers what the previous one was asked. They are bounded three ways: at
//! most `max_turns` exchanges are kept, a conversation idle for longer than `idle` starts
//! afresh, and the language model's worker drops the oldest turns when the prompt would
//! not fit its context ([`LlmEngine::fit`](super::LlmEngine::fit)). `serena ask --new`
//! clears it.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::Message;
use crate::store::{to_unix_ms, Store, StoreError};

/// The store setting that holds the conversation.
pub const CONVERSATION_SETTING: &str = "llm.conversation";

/// The remembered turns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// User and assistant messages, oldest first.
    pub turns: Vec<Message>,
    /// When the last turn was added (Unix milliseconds).
    pub updated_ms: u64,
}

impl Conversation {
    /// The stored conversation, or an empty one when there is none or it is older than
    /// `idle` (zero: never too old). A damaged record is logged and treated as empty.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub fn load(store: &Store, now: SystemTime, idle: Duration) -> Result<Self, StoreError> {
        let conv = match store.setting_as::<Conversation>(CONVERSATION_SETTING) {
            Ok(c) => c.unwrap_or_default(),
            Err(StoreError::InvalidInput(_)) => {
                tracing::warn!("the stored conversation is damaged; starting afresh");
                Conversation::default()
            }
            Err(e) => return Err(e),
        };
        let age = to_unix_ms(now).saturating_sub(conv.updated_ms);
        if !idle.is_zero() && age > idle.as_millis() as u64 {
            return Ok(Conversation::default());
        }
        Ok(conv)
    }

    /// Forget the conversation.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub fn clear(store: &Store) -> Result<(), StoreError> {
        store.remove_setting(CONVERSATION_SETTING).map(|_| ())
    }

    /// The messages for the model: the system prompt, the remembered turns, the question.
    pub fn prompt(&self, system: &str, question: &str) -> Vec<Message> {
        let mut messages = Vec::with_capacity(self.turns.len() + 2);
        if !system.trim().is_empty() {
            messages.push(Message::new("system", system));
        }
        messages.extend(self.turns.iter().cloned());
        messages.push(Message::new("user", question));
        messages
    }

    /// Remember an exchange, keeping at most `max_turns` exchanges, and store it.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub fn record(
        &mut self,
        store: &Store,
        question: &str,
        reply: &str,
        max_turns: usize,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.turns.push(Message::new("user", question));
        self.turns.push(Message::new("assistant", reply));
        let keep = max_turns.saturating_mul(2);
        if self.turns.len() > keep {
            let excess = self.turns.len() - keep;
            self.turns.drain(..excess);
        }
        self.updated_ms = to_unix_ms(now);
        let value = serde_json::to_value(&*self)
            .map_err(|e| StoreError::InvalidInput(format!("conversation: {e}")))?;
        store.set_setting(CONVERSATION_SETTING, &value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("store")).expect("open store");
        (dir, store)
    }

    #[test]
    fn turns_are_kept_bounded_and_survive_reopening() {
        let (dir, store) = store();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut conv = Conversation::load(&store, t0, Duration::from_secs(300)).expect("load");
        for i in 0..5 {
            conv.record(&store, &format!("q{i}"), &format!("a{i}"), 3, t0)
                .expect("record");
        }
        assert_eq!(conv.turns.len(), 6);
        assert_eq!(conv.turns[0], Message::new("user", "q2"));
        store.close().expect("close");

        let store = Store::open(&dir.path().join("store")).expect("reopen");
        let again = Conversation::load(
            &store,
            t0 + Duration::from_secs(60),
            Duration::from_secs(300),
        )
        .expect("load");
        assert_eq!(again, conv);
        let prompt = again.prompt("sys", "next");
        assert_eq!(prompt.len(), 8);
        assert_eq!(prompt[0].role, "system");
        assert_eq!(prompt[7], Message::new("user", "next"));
    }

    #[test]
    fn an_idle_conversation_starts_afresh_and_clear_forgets() {
        let (_dir, store) = store();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut conv = Conversation::default();
        conv.record(&store, "q", "a", 8, t0).expect("record");
        let later = t0 + Duration::from_secs(301);
        let idle = Duration::from_secs(300);
        assert!(Conversation::load(&store, later, idle)
            .expect("load")
            .turns
            .is_empty());
        assert_eq!(
            Conversation::load(&store, later, Duration::ZERO)
                .expect("load")
                .turns
                .len(),
            2,
            "zero idle never expires"
        );
        Conversation::clear(&store).expect("clear");
        assert!(Conversation::load(&store, t0, idle)
            .expect("load")
            .turns
            .is_empty());
    }
}
