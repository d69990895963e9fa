//! Applying profile changes between utterances only.
//!
//! The monitor may change the profile at any moment; the live pipeline must not switch
//! whisper models or thread counts halfway through an utterance. It calls
//! [`ProfileGate::settings_for_next_utterance`] when an utterance starts and keeps the
//! returned settings until it ends. The gate reads the profile from a `watch` channel
//! (the monitor's, [`super::PowerHandle::watch`]) without waiting, so it is plain
//! synchronous code and needs no runtime.

use std::sync::Arc;

use tokio::sync::watch;

use super::profile::{notice_between, Base, Profile, ProfileSettings};

/// What the pipeline gets at the start of an utterance.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The settings for this utterance. They never change; the next utterance may get
    /// other ones.
    pub settings: Arc<ProfileSettings>,
    /// The profile of the previous utterance, when it differs.
    pub changed_from: Option<Profile>,
    /// Something to say before listening (entering or leaving critical).
    pub notice: Option<&'static str>,
}

impl Applied {
    /// Whether whisper must be reloaded: the model differs from the previous utterance's.
    pub fn whisper_model_changed(&self, previous: &ProfileSettings) -> bool {
        self.settings.whisper_model != previous.whisper_model
    }
}

/// Hands out the settings in force, one utterance at a time.
#[derive(Debug)]
pub struct ProfileGate {
    base: Base,
    profile: watch::Receiver<Profile>,
    in_force: Arc<ProfileSettings>,
    base_changed: bool,
}

impl ProfileGate {
    /// A gate over the profiles published on `profile`, scaled from `base`. The profile in
    /// the channel now is in force from the start.
    pub fn new(base: Base, profile: watch::Receiver<Profile>) -> ProfileGate {
        let current = *profile.borrow();
        let in_force = Arc::new(ProfileSettings::for_profile(current, &base));
        ProfileGate {
            base,
            profile,
            in_force,
            base_changed: false,
        }
    }

    /// The settings of the utterance in progress (or the last one).
    pub fn in_force(&self) -> Arc<ProfileSettings> {
        Arc::clone(&self.in_force)
    }

    /// The profile the next utterance will get, when it differs from the one in force.
    pub fn pending(&self) -> Option<Profile> {
        let next = *self.profile.borrow();
        (next != self.in_force.profile).then_some(next)
    }

    /// Call at the start of each utterance: takes the latest profile and returns its
    /// settings, which stay fixed for the whole utterance. Changes that came and went
    /// while no utterance started (saver, then performance again) are not reported.
    pub fn settings_for_next_utterance(&mut self) -> Applied {
        let next = *self.profile.borrow_and_update();
        let previous = self.in_force.profile;
        if next == previous && !self.base_changed {
            return Applied {
                settings: self.in_force(),
                changed_from: None,
                notice: None,
            };
        }
        self.base_changed = false;
        self.in_force = Arc::new(ProfileSettings::for_profile(next, &self.base));
        Applied {
            settings: self.in_force(),
            changed_from: (next != previous).then_some(previous),
            notice: notice_between(previous, next),
        }
    }

    /// New configured values (a configuration reload); like a profile change, they apply
    /// from the next utterance.
    pub fn set_base(&mut self, base: Base) {
        self.base_changed = base != self.base;
        self.base = base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::profile::{CRITICAL_NOTICE, RECOVERED_NOTICE};

    fn base() -> Base {
        Base {
            stt_model: "base.en".into(),
            stt_threads: 0,
            llm_threads: 0,
            llm_max_tokens: 256,
            cores: 8,
        }
    }

    #[test]
    fn a_change_mid_utterance_waits_for_the_next_one() {
        let (tx, rx) = watch::channel(Profile::Performance);
        let mut gate = ProfileGate::new(base(), rx);

        // Utterance 1 starts in performance.
        let first = gate.settings_for_next_utterance();
        assert_eq!(first.settings.profile, Profile::Performance);
        assert_eq!(first.changed_from, None);
        let held = Arc::clone(&first.settings);

        // The battery drops mid-utterance.
        tx.send_replace(Profile::Saver);
        assert_eq!(held.profile, Profile::Performance);
        assert_eq!(held.whisper_model, None);
        assert_eq!(gate.in_force().profile, Profile::Performance);
        assert_eq!(gate.pending(), Some(Profile::Saver));
        assert_eq!(*gate.in_force(), *held);

        // Utterance 2 gets saver.
        let second = gate.settings_for_next_utterance();
        assert_eq!(second.settings.profile, Profile::Saver);
        assert_eq!(second.changed_from, Some(Profile::Performance));
        assert_eq!(second.notice, None);
        assert!(second.whisper_model_changed(&held));
        assert_eq!(second.settings.whisper_model.as_deref(), Some("tiny.en"));
        assert_eq!(gate.pending(), None);
        // The first utterance's settings are untouched.
        assert_eq!(held.profile, Profile::Performance);

        // Nothing changed: same Arc, no change reported.
        let third = gate.settings_for_next_utterance();
        assert!(Arc::ptr_eq(&third.settings, &second.settings));
        assert_eq!(third.changed_from, None);
    }

    #[test]
    fn flapping_between_utterances_is_invisible() {
        let (tx, rx) = watch::channel(Profile::Balanced);
        let mut gate = ProfileGate::new(base(), rx);
        let before = gate.settings_for_next_utterance().settings;
        tx.send_replace(Profile::Critical);
        tx.send_replace(Profile::Saver);
        tx.send_replace(Profile::Balanced);
        let after = gate.settings_for_next_utterance();
        assert_eq!(after.changed_from, None);
        assert_eq!(after.notice, None);
        assert!(Arc::ptr_eq(&before, &after.settings));
    }

    #[test]
    fn critical_is_announced_once_on_entry_and_on_exit() {
        let (tx, rx) = watch::channel(Profile::Saver);
        let mut gate = ProfileGate::new(base(), rx);
        assert_eq!(gate.settings_for_next_utterance().notice, None);
        tx.send_replace(Profile::Critical);
        let applied = gate.settings_for_next_utterance();
        assert_eq!(applied.notice, Some(CRITICAL_NOTICE));
        assert!(!applied.settings.always_listening);
        assert_eq!(gate.settings_for_next_utterance().notice, None);
        tx.send_replace(Profile::Performance);
        let applied = gate.settings_for_next_utterance();
        assert_eq!(applied.notice, Some(RECOVERED_NOTICE));
        assert!(applied.settings.always_listening);
    }

    #[test]
    fn starts_with_the_profile_already_published() {
        let (_tx, rx) = watch::channel(Profile::Critical);
        let mut gate = ProfileGate::new(base(), rx);
        let applied = gate.settings_for_next_utterance();
        assert_eq!(applied.settings.profile, Profile::Critical);
        assert_eq!(applied.changed_from, None);
        assert_eq!(
            applied.notice, None,
            "the monitor's event announces startup"
        );
    }

    #[test]
    fn a_new_base_rescales_the_settings() {
        let (_tx, rx) = watch::channel(Profile::Performance);
        let mut gate = ProfileGate::new(base(), rx);
        let held = gate.settings_for_next_utterance().settings;
        assert_eq!(held.stt_threads, 4);
        gate.set_base(Base {
            stt_threads: 2,
            ..base()
        });
        assert_eq!(gate.in_force().stt_threads, 4, "not mid-utterance");
        let applied = gate.settings_for_next_utterance();
        assert_eq!(applied.settings.stt_threads, 2);
        assert_eq!(applied.changed_from, None);
        assert_eq!(held.stt_threads, 4);
    }
}
