//! A service's trigger states paired with the configured triggers in one walk. The
//! states are a map sorted by name; the triggers, sorted the same way once, are walked
//! beside it. The tick reads every state of every service each second, and a lookup
//! per (service, trigger) compared names a few dozen times per service: at 2,000
//! services that was a third of an idle console's CPU at a 15 s poll.

use crate::config::Trigger;

/// The configured triggers' places in the config, in name order.
pub struct ByName<'a>(Vec<(&'a str, usize)>);

impl<'a> ByName<'a> {
    pub fn new(triggers: &'a [Trigger]) -> ByName<'a> {
        let mut sorted: Vec<(&str, usize)> = triggers
            .iter()
            .enumerate()
            .map(|(at, t)| (t.name.as_str(), at))
            .collect();
        sorted.sort_unstable();
        ByName(sorted)
    }

    /// Each configured trigger's place with the state `states` holds for it, if any,
    /// in name order. `states` must iterate in name order, as a `BTreeMap` does; a state
    /// named after no configured trigger is passed over.
    pub fn pair<'s, 'k: 's, V: 's>(
        &'s self,
        states: impl Iterator<Item = (&'k String, V)> + 's,
    ) -> impl Iterator<Item = (usize, Option<V>)> + 's {
        let mut states = states.peekable();
        self.0.iter().map(move |&(name, at)| {
            while let Some((key, _)) = states.peek() {
                // Equal names are the usual case: compared first, by length and bytes.
                if key.as_str() == name {
                    return (at, states.next().map(|(_, state)| state));
                }
                if key.as_str() > name {
                    break;
                }
                states.next();
            }
            (at, None)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::ByName;

    #[test]
    fn every_configured_trigger_is_paired_with_its_state_or_none() {
        let config = crate::config::Config::default();
        let names: Vec<&str> = config.triggers.iter().map(|t| t.name.as_str()).collect();
        assert!(names.len() >= 3, "{names:?}");
        let by_name = ByName::new(&config.triggers);
        // Every other trigger has a state, plus one no trigger is named.
        let mut states: BTreeMap<String, usize> = names
            .iter()
            .enumerate()
            .filter(|(at, _)| at % 2 == 0)
            .map(|(at, name)| (name.to_string(), at))
            .collect();
        states.insert("aaa-not-configured".into(), 99);
        states.insert("zzz-not-configured".into(), 99);
        let paired: Vec<(usize, Option<&usize>)> = by_name.pair(states.iter()).collect();
        assert_eq!(paired.len(), names.len());
        for (at, state) in paired {
            assert_eq!(state.copied(), (at % 2 == 0).then_some(at), "{}", names[at]);
        }
        let mut places: Vec<usize> = by_name.pair(states.iter()).map(|p| p.0).collect();
        places.sort_unstable();
        assert_eq!(places, (0..names.len()).collect::<Vec<_>>());
        let none = BTreeMap::<String, usize>::new();
        assert!(by_name.pair(none.iter()).all(|(_, state)| state.is_none()));
    }
}
