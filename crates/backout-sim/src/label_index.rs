//! The store's label index: for each kind and `key=value` label, the objects that
//! carry it, in key order. A list by a selector with an equality (`app=web`, what
//! kubectl, kube-rs and the controllers send) then reads its few candidates instead
//! of every object of the kind: 10 pods of 20,000, not all of them.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::store::{key_of, ObjKey};

type Label = (&'static str, String, String);

#[derive(Default)]
pub struct LabelIndex {
    /// (plural, label key, label value) -> the objects carrying that label.
    objects: HashMap<Label, BTreeSet<ObjKey>>,
}

fn labels(obj: &Value) -> impl Iterator<Item = (&String, &str)> {
    obj["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k, v.as_str()?)))
}

impl LabelIndex {
    pub fn add(&mut self, plural: &'static str, obj: &Value) {
        let key = key_of(obj);
        for (k, v) in labels(obj) {
            self.objects
                .entry((plural, k.clone(), v.to_string()))
                .or_default()
                .insert(key.clone());
        }
    }

    pub fn remove(&mut self, plural: &'static str, obj: &Value) {
        let key = key_of(obj);
        for (k, v) in labels(obj) {
            let label = (plural, k.clone(), v.to_string());
            if let Some(set) = self.objects.get_mut(&label) {
                set.remove(&key);
                if set.is_empty() {
                    self.objects.remove(&label);
                }
            }
        }
    }

    /// The objects of `plural` labelled `key=value`, in key order.
    pub fn carrying(&self, plural: &'static str, key: &str, value: &str) -> &BTreeSet<ObjKey> {
        static NONE: BTreeSet<ObjKey> = BTreeSet::new();
        self.objects
            .get(&(plural, key.to_string(), value.to_string()))
            .unwrap_or(&NONE)
    }
}
