//! Whether each of a trigger's recent answers was clean: the data-quality part of the
//! confidence. Held as bits in the state itself; a `VecDeque<bool>` of them was a heap
//! allocation per (trigger, service), 16,000 at 2,000 services.

use serde::ser::{Serialize, Serializer};

/// How many recent answers the data-quality part of the confidence looks at.
pub const QUALITY_WINDOW: usize = 20;

/// The last `QUALITY_WINDOW` answers, newest in the lowest bit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Recent {
    clean: u32,
    len: u8,
}

const _: () = assert!(QUALITY_WINDOW <= u32::BITS as usize);

impl Recent {
    /// Records an answer; the oldest goes once `QUALITY_WINDOW` are held.
    pub fn push(&mut self, clean: bool) {
        let window = (1u64 << QUALITY_WINDOW) - 1;
        self.clean = (((u64::from(self.clean) << 1) | u64::from(clean)) & window) as u32;
        self.len = (usize::from(self.len) + 1).min(QUALITY_WINDOW) as u8;
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many of the answers held were clean.
    pub fn clean(&self) -> usize {
        self.clean.count_ones() as usize
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.len).rev().map(|age| (self.clean >> age) & 1 == 1)
    }
}

/// As the list of booleans it holds, oldest first.
impl Serialize for Recent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::{Recent, QUALITY_WINDOW};

    #[test]
    fn it_holds_the_last_window_of_answers_oldest_first() {
        let mut recent = Recent::default();
        assert!(recent.is_empty());
        let answers: Vec<bool> = (0..QUALITY_WINDOW + 7).map(|n| n % 3 != 0).collect();
        for (n, clean) in answers.iter().enumerate() {
            recent.push(*clean);
            let held = &answers[(n + 1).saturating_sub(QUALITY_WINDOW)..=n];
            assert_eq!(recent.iter().collect::<Vec<_>>(), held, "after {}", n + 1);
            assert_eq!(recent.len(), held.len());
            assert_eq!(recent.clean(), held.iter().filter(|c| **c).count());
        }
        assert_eq!(
            serde_json::to_string(&recent).unwrap(),
            serde_json::to_string(&answers[7..]).unwrap()
        );
    }
}
