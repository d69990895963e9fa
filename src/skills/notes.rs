//! Notes: "remember that ...", "what did I ask you to remember", "forget ...".

use crate::router::{Intent, Match};

use super::{join_and, Env, Reply, SkillError};

/// The `note` slot, trimmed; `None` when absent or empty.
fn note_text(m: &Match) -> Option<&str> {
    m.slots
        .text("note")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Handle a notes intent.
///
/// # Errors
/// [`SkillError::Store`] when the store fails.
pub fn handle(m: &Match, env: &Env<'_>) -> Result<Reply, SkillError> {
    let store = env.store;
    match m.intent {
        Intent::Remember => {
            let Some(text) = note_text(m) else {
                return Ok(Reply::say("What should I remember?"));
            };
            let note = store.add_note(text)?;
            Ok(Reply::say(format!(
                "OK, I'll remember that {}.",
                text.trim_end_matches('.')
            ))
            .with("note_id", note.id))
        }
        Intent::Recall => {
            let mut notes = store.notes()?;
            if let Some(about) = m.slots.text("note").map(str::to_lowercase) {
                notes.retain(|n| n.text.to_lowercase().contains(about.trim()));
            }
            if notes.is_empty() {
                return Ok(Reply::say("You haven't asked me to remember anything."));
            }
            let texts: Vec<String> = notes
                .iter()
                .map(|n| n.text.trim_end_matches('.').to_string())
                .collect();
            Ok(
                Reply::say(format!("You asked me to remember: {}.", join_and(&texts)))
                    .with("notes", notes.len()),
            )
        }
        Intent::Forget => {
            if m.slots.text("scope") == Some("all") {
                let n = store.clear_notes()?;
                return Ok(Reply::say(match n {
                    0 => "There was nothing to forget.".to_string(),
                    1 => "I forgot 1 note.".to_string(),
                    n => format!("I forgot {n} notes."),
                })
                .with("forgotten", n));
            }
            let Some(text) = note_text(m) else {
                return Ok(Reply::say("What should I forget?"));
            };
            let removed = store.remove_notes_matching(text)?;
            Ok(if removed.is_empty() {
                Reply::say(format!("I have no note about {text}."))
            } else {
                Reply::say(format!("OK, I forgot {}.", text.trim_end_matches('.')))
                    .with("forgotten", removed.len())
            })
        }
        _ => Ok(Reply::default()),
    }
}
