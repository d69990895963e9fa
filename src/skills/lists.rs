//! Lists: add and check off items ("add apples to my shopping list").
//!
//! The shopping list and the to-do list always exist; other lists exist once created
//! (`serena lists create NAME`). An item for a list that does not exist is refused with a
//! reply saying how to create it, so "add a meeting to my calendar" never invents a list.

use crate::router::{Intent, Match};

use super::{Env, Reply, SkillError};

/// The shopping list's name.
pub const SHOPPING: &str = "shopping list";
/// The to-do list's name.
pub const TODO: &str = "to-do list";

/// The stored name for a spoken list name: "groceries" and "groceries list" are one list.
pub fn canonical(name: &str) -> String {
    let n = name.trim().to_lowercase();
    let n = n
        .trim_start_matches("my ")
        .trim_start_matches("the ")
        .trim();
    let base = n.strip_suffix(" list").unwrap_or(n).trim();
    match base {
        "shopping" | "grocery" | "groceries shopping" => SHOPPING.into(),
        "todo" | "to do" | "to-do" | "task" | "tasks" => TODO.into(),
        other => format!("{other} list"),
    }
}

/// Handle a list intent.
///
/// # Errors
/// [`SkillError::Store`] when the store fails.
pub fn handle(m: &Match, env: &Env<'_>) -> Result<Reply, SkillError> {
    let store = env.store;
    let list = match m.intent {
        Intent::ShoppingListAddItem | Intent::ShoppingListCompleteItem => SHOPPING.to_string(),
        _ => canonical(m.slots.text("name").unwrap_or("to do")),
    };
    let Some(item) = m
        .slots
        .text("item")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Ok(Reply::say("Which item?"));
    };
    let exists =
        list == SHOPPING || list == TODO || store.list_names()?.iter().any(|l| l.name == list);
    if !exists {
        return Ok(Reply::say(format!(
            "You don't have a {list}. Create it with: serena lists create \"{}\"",
            list.trim_end_matches(" list")
        )));
    }
    match m.intent {
        Intent::ShoppingListAddItem | Intent::ListAddItem => {
            let added = store.add_list_item(&list, item)?;
            Ok(Reply::say(format!("Added {item}"))
                .with("list", list)
                .with("item_id", added.id))
        }
        _ => match store.complete_list_item(&list, item)? {
            Some(done) => Ok(Reply::say(format!("Checked off {item}"))
                .with("list", list)
                .with("item_id", done.id)),
            None => Ok(Reply::say(format!("{item} is not on your {list}."))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_are_canonical() {
        assert_eq!(canonical("shopping"), SHOPPING);
        assert_eq!(canonical("my shopping list"), SHOPPING);
        assert_eq!(canonical("Todo"), TODO);
        assert_eq!(canonical("task"), TODO);
        assert_eq!(canonical("groceries"), "groceries list");
        assert_eq!(canonical("groceries list"), "groceries list");
    }
}
