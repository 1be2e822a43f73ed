//! Feature flags as data: each `[[flag]]` as last read from its provider, and the
//! one question the engine asks of them: is a flag the change behind a regression?

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::keys::ServiceKey;

/// A feature flag as last read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagState {
    pub name: String,
    /// The service whose code reads it.
    pub service: ServiceKey,
    /// On in its environment; `None` when it could not be read.
    pub on: Option<bool>,
    /// When it was last turned on or off, and by whom, as the provider's events say.
    pub changed_at: Option<Timestamp>,
    pub changed_by: Option<String>,
    /// Why it could not be read.
    pub error: Option<String>,
}

impl FlagState {
    /// Turned on within `window` of `now`: the change a kill switch reverts.
    pub fn turned_on_within(&self, now: Timestamp, window: Duration) -> Option<Timestamp> {
        let at = self.changed_at.filter(|_| self.on == Some(true))?;
        (now.duration_since(at).as_secs() <= window.as_secs() as i64).then_some(at)
    }

    /// Turned off, and when: a kill switch thrown, by anyone.
    pub fn turned_off_at(&self) -> Option<Timestamp> {
        self.changed_at.filter(|_| self.on == Some(false))
    }
}

/// The flag of `service` turned on within `window` of `now`, the latest if several:
/// the change a kill switch reverts.
pub fn in_play<'a>(
    flags: impl IntoIterator<Item = &'a FlagState>,
    service: &ServiceKey,
    now: Timestamp,
    window: Duration,
) -> Option<(&'a FlagState, Timestamp)> {
    flags
        .into_iter()
        .filter(|f| f.service == *service)
        .filter_map(|f| Some((f, f.turned_on_within(now, window)?)))
        .max_by_key(|(_, at)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(on: Option<bool>, at: &str) -> FlagState {
        FlagState {
            name: "new-coupons".into(),
            service: ServiceKey::new("shop", "checkout"),
            on,
            changed_at: Some(at.parse().unwrap()),
            changed_by: Some("dana".into()),
            error: None,
        }
    }

    #[test]
    fn only_a_flag_read_as_on_and_turned_on_lately_is_a_suspect() {
        let now: Timestamp = "2026-12-06T05:20:00Z".parse().unwrap();
        let window = Duration::from_secs(15 * 60);
        let recent = flag(Some(true), "2026-12-06T05:18:00Z");
        assert!(recent.turned_on_within(now, window).is_some());
        assert!(flag(Some(true), "2026-12-06T04:00:00Z")
            .turned_on_within(now, window)
            .is_none());
        assert!(
            flag(None, "2026-12-06T05:18:00Z")
                .turned_on_within(now, window)
                .is_none(),
            "unread is never evidence"
        );
        let off = flag(Some(false), "2026-12-06T05:19:00Z");
        assert!(off.turned_on_within(now, window).is_none());
        assert_eq!(
            off.turned_off_at(),
            Some("2026-12-06T05:19:00Z".parse().unwrap())
        );
    }
}
