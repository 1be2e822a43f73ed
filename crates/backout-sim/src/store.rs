//! The simulated cluster's object store, standing in for etcd plus the API server's
//! watch cache: one global resourceVersion, a bounded event log per resource (older
//! versions answer 410 Expired), and broadcast channels that feed watches.
//!
//! Objects are kept as JSON values so that patches apply exactly as sent; the
//! controllers convert to typed k8s-openapi structs where they reason about them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::label_index::LabelIndex;
use super::resources::{self, ResourceDef};
use backout_k8s::template::SAFE_ALPHABET;

pub type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn wire_name(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: EventKind,
    pub object: Arc<Value>,
    /// The object before this change, so a watch with a selector can turn a
    /// change out of (or into) its selection into DELETED (or ADDED).
    pub prev: Option<Arc<Value>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("{qualified} \"{name}\" not found")]
    NotFound { qualified: String, name: String },
    #[error("{qualified} \"{name}\" already exists")]
    AlreadyExists { qualified: String, name: String },
    #[error("Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again")]
    Conflict { qualified: String, name: String },
    #[error("{0}")]
    Invalid(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
}

struct Collection {
    objects: BTreeMap<ObjKey, Arc<Value>>,
    log: VecDeque<Arc<WatchEvent>>,
    /// Every event with rv at or below this has left the log.
    compacted_through: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

impl Collection {
    fn new() -> Self {
        let (tx, _) = broadcast::channel(WATCH_CHANNEL_CAPACITY);
        Collection {
            objects: BTreeMap::new(),
            log: VecDeque::new(),
            compacted_through: 0,
            tx,
        }
    }
}

/// How many events a slow watcher may fall behind before it is told 410 and relists.
const WATCH_CHANNEL_CAPACITY: usize = 16_384;

/// The backlog a watch replays, and the receiver for what follows it.
pub type WatchStart = (Vec<Arc<WatchEvent>>, broadcast::Receiver<Arc<WatchEvent>>);

pub struct Store {
    rv: u64,
    collections: HashMap<&'static str, Collection>,
    log_capacity: usize,
    /// owner uid -> objects naming it in ownerReferences, for controllers and cascading delete.
    owned: HashMap<String, BTreeSet<(&'static str, String, String)>>,
    /// Deployments touched since the controller last looked.
    dirty: HashSet<ObjKey>,
    labels: LabelIndex,
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

pub fn key_of(obj: &Value) -> ObjKey {
    (
        meta_str(obj, "namespace").to_string(),
        meta_str(obj, "name").to_string(),
    )
}

fn owner_refs(obj: &Value) -> impl Iterator<Item = &Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
}

pub fn controller_owner<'a>(obj: &'a Value, kind: &str) -> Option<&'a str> {
    owner_refs(obj)
        .find(|r| r["kind"] == kind && r["controller"] == true)
        .and_then(|r| r["name"].as_str())
}

impl Store {
    pub fn new(log_capacity: usize) -> Self {
        let mut store = Store {
            rv: 1,
            collections: HashMap::new(),
            log_capacity,
            owned: HashMap::new(),
            dirty: HashSet::new(),
            labels: LabelIndex::default(),
        };
        for r in resources::ALL.iter().filter(|r| !r.review) {
            store.collections.insert(r.plural, Collection::new());
        }
        for ns in ["default", "kube-system"] {
            store.ensure_namespace(ns);
        }
        store
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn coll(&self, res: &ResourceDef) -> &Collection {
        &self.collections[res.plural]
    }

    fn coll_mut(&mut self, res: &ResourceDef) -> &mut Collection {
        self.collections
            .get_mut(res.plural)
            .expect("every non-review resource has a collection")
    }

    pub fn ensure_namespace(&mut self, ns: &str) {
        if self.get(&resources::NAMESPACES, "", ns).is_none() {
            let obj = json!({"metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            self.create(&resources::NAMESPACES, obj)
                .expect("a missing namespace can be created");
        }
    }

    pub fn get(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.coll(res)
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects in key order, within one namespace or all of them.
    pub fn list<'a>(
        &'a self,
        res: &ResourceDef,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.list_after(res, ns, None)
    }

    /// As `list`, starting after `after` (a list's continue key) without walking the
    /// keys before it: a paged list of 20,000 pods stays linear, not quadratic.
    pub fn list_after<'a>(
        &'a self,
        res: &ResourceDef,
        ns: Option<&'a str>,
        after: Option<&ObjKey>,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.coll(res)
            .objects
            .range((range_start(ns, after), Bound::Unbounded))
            .take_while(move |((n, _), _)| ns.is_none_or(|ns| n == ns))
            .map(|(_, v)| v)
    }

    /// As `list_after`, only the objects labelled `key=value`, read from the label
    /// index rather than by walking the kind.
    pub fn list_labelled<'a>(
        &'a self,
        res: &'static ResourceDef,
        ns: Option<&'a str>,
        after: Option<&ObjKey>,
        (key, value): (&str, &str),
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        let objects = &self.coll(res).objects;
        self.labels
            .carrying(res.plural, key, value)
            .range((range_start(ns, after), Bound::Unbounded))
            .take_while(move |(n, _)| ns.is_none_or(|ns| n == ns))
            .filter_map(|k| objects.get(k))
    }

    pub fn count(&self, res: &ResourceDef) -> usize {
        self.coll(res).objects.len()
    }

    /// Objects of `res` whose ownerReferences name `owner_uid`.
    pub fn owned_by(&self, res: &ResourceDef, owner_uid: &str) -> Vec<Arc<Value>> {
        let Some(children) = self.owned.get(owner_uid) else {
            return Vec::new();
        };
        children
            .iter()
            .filter(|(plural, _, _)| *plural == res.plural)
            .filter_map(|(_, ns, name)| self.get(res, ns, name))
            .collect()
    }

    pub fn create(
        &mut self,
        res: &'static ResourceDef,
        mut obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        self.prepare_create(res, &mut obj)?;
        Ok(self.commit(res, obj, None))
    }

    /// Fills in server-set metadata and checks the object may be created, without storing it,
    /// so that `dryRun=All` answers exactly what a real create would.
    pub fn prepare_create(&self, res: &ResourceDef, obj: &mut Value) -> Result<(), StoreError> {
        if !obj.is_object() {
            return Err(StoreError::Invalid(
                "the request body must be a JSON object".into(),
            ));
        }
        let meta = obj
            .as_object_mut()
            .expect("checked above")
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(StoreError::Invalid("metadata must be an object".into()));
        }
        if meta_str(obj, "name").is_empty() {
            let prefix = meta_str(obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    res.kind
                )));
            }
            obj["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix()));
        }
        let (ns, name) = key_of(obj);
        if res.namespaced {
            if ns.is_empty() {
                return Err(StoreError::Invalid(
                    "the namespace of the object must be set".into(),
                ));
            }
            if self.get(&resources::NAMESPACES, "", &ns).is_none() {
                return Err(StoreError::NotFound {
                    qualified: "namespaces".into(),
                    name: ns,
                });
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if self
            .get(res, if res.namespaced { &ns } else { "" }, &name)
            .is_some()
        {
            return Err(StoreError::AlreadyExists {
                qualified: res.qualified(),
                name,
            });
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let meta = &mut obj["metadata"];
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = json!(now_rfc3339());
        meta["resourceVersion"] = json!((self.rv + 1).to_string());
        if res.tracks_generation() {
            meta["generation"] = json!(1);
        }
        Ok(())
    }

    /// Checks an update against the stored object and returns what would be stored.
    /// `None` means the update changes nothing.
    pub fn prepare_update(
        &self,
        res: &ResourceDef,
        mut obj: Value,
    ) -> Result<Option<Value>, StoreError> {
        let (ns, name) = key_of(&obj);
        let ns = if res.namespaced { ns } else { String::new() };
        let current = self
            .get(res, &ns, &name)
            .ok_or_else(|| StoreError::NotFound {
                qualified: res.qualified(),
                name: name.clone(),
            })?;
        let requested_rv = meta_str(&obj, "resourceVersion");
        if !requested_rv.is_empty() && requested_rv != meta_str(&current, "resourceVersion") {
            return Err(StoreError::Conflict {
                qualified: res.qualified(),
                name,
            });
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        for field in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
            "managedFields",
        ] {
            match current["metadata"].get(field) {
                Some(v) => obj["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if *current == obj {
            return Ok(None);
        }
        if res.tracks_generation()
            && (current["spec"] != obj["spec"]
                || current["metadata"]["annotations"] != obj["metadata"]["annotations"])
        {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["metadata"]["generation"] = json!(generation + 1);
        }
        obj["metadata"]["resourceVersion"] = json!((self.rv + 1).to_string());
        Ok(Some(obj))
    }

    /// Stores an update; an update that changes nothing keeps the old resourceVersion
    /// and sends no event, as the real API server does.
    pub fn update(
        &mut self,
        res: &'static ResourceDef,
        obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        let (ns, name) = key_of(&obj);
        match self.prepare_update(res, obj)? {
            Some(next) => {
                let prev = self.get(res, &ns, &name);
                Ok(self.commit(res, next, prev))
            }
            None => Ok(self
                .get(res, &ns, &name)
                .expect("checked by prepare_update")),
        }
    }

    fn commit(
        &mut self,
        res: &'static ResourceDef,
        mut obj: Value,
        prev: Option<Arc<Value>>,
    ) -> Arc<Value> {
        // As the API server records who last wrote an object and when; clients read
        // the time to learn when, say, a ConfigMap last changed.
        obj["metadata"]["managedFields"] = json!([{"manager": "backout-sim", "operation": "Update",
            "apiVersion": res.api_version(), "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": {}}]);
        self.rv += 1;
        let rv = self.rv;
        let key = key_of(&obj);
        let obj = Arc::new(obj);
        // Most writes (a pod's status) keep the labels: the index is left alone then.
        let relabelled = prev
            .as_ref()
            .is_none_or(|p| p["metadata"]["labels"] != obj["metadata"]["labels"]);
        if let Some(p) = &prev {
            self.unindex_owners(res, p);
            if relabelled {
                self.labels.remove(res.plural, p);
            }
        }
        self.index_owners(res, &obj);
        if relabelled {
            self.labels.add(res.plural, &obj);
        }
        self.mark_dirty(res, &obj);
        self.coll_mut(res).objects.insert(key, obj.clone());
        let kind = if prev.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.publish(
            res,
            WatchEvent {
                rv,
                kind,
                object: obj.clone(),
                prev,
            },
        );
        obj
    }

    /// Deletes an object and, as the garbage collector would, everything it owns.
    pub fn delete(
        &mut self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
    ) -> Result<Arc<Value>, StoreError> {
        let key = (ns.to_string(), name.to_string());
        let Some(obj) = self.coll_mut(res).objects.remove(&key) else {
            return Err(StoreError::NotFound {
                qualified: res.qualified(),
                name: name.to_string(),
            });
        };
        self.rv += 1;
        let mut gone = (*obj).clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let gone = Arc::new(gone);
        self.unindex_owners(res, &obj);
        self.labels.remove(res.plural, &obj);
        self.mark_dirty(res, &obj);
        self.publish(
            res,
            WatchEvent {
                rv: self.rv,
                kind: EventKind::Deleted,
                object: gone.clone(),
                prev: Some(obj.clone()),
            },
        );
        let uid = meta_str(&obj, "uid").to_string();
        let children: Vec<_> = self.owned.remove(&uid).into_iter().flatten().collect();
        for (plural, cns, cname) in children {
            if let Some(child_res) = resources::ALL.iter().find(|r| r.plural == plural) {
                let _ = self.delete(child_res, &cns, &cname);
            }
        }
        Ok(gone)
    }

    fn publish(&mut self, res: &ResourceDef, event: WatchEvent) {
        let capacity = self.log_capacity;
        let coll = self.coll_mut(res);
        let event = Arc::new(event);
        coll.log.push_back(event.clone());
        while coll.log.len() > capacity {
            if let Some(old) = coll.log.pop_front() {
                coll.compacted_through = old.rv;
            }
        }
        // No receivers is the normal idle case, not an error.
        let _ = coll.tx.send(event);
    }

    /// The events after `since` that are still in the log, and a receiver for the ones
    /// to come, taken together so that no event falls between them.
    pub fn watch_from(&self, res: &ResourceDef, since: u64) -> Result<WatchStart, StoreError> {
        let coll = self.coll(res);
        if since < coll.compacted_through {
            return Err(StoreError::Expired {
                requested: since,
                oldest: coll.compacted_through + 1,
            });
        }
        let backlog = coll.log.iter().filter(|e| e.rv > since).cloned().collect();
        Ok((backlog, coll.tx.subscribe()))
    }

    /// Drops every logged event, as etcd compaction does; watches from older
    /// versions then get 410 Expired. Used by drills and tests.
    pub fn compact(&mut self) {
        let rv = self.rv;
        for coll in self.collections.values_mut() {
            coll.log.clear();
            coll.compacted_through = rv;
        }
    }

    /// Deployments and Rollouts touched since the last call.
    pub fn take_dirty(&mut self) -> Vec<ObjKey> {
        self.dirty.drain().collect()
    }

    fn mark_dirty(&mut self, res: &ResourceDef, obj: &Value) {
        let ns = meta_str(obj, "namespace").to_string();
        // A Deployment or a Rollout: the control plane syncs whichever the name holds.
        let workload = |o: &Value| {
            controller_owner(o, "Deployment")
                .or(controller_owner(o, "Rollout"))
                .map(str::to_string)
        };
        let deployment = match res.kind {
            "Deployment" | "Rollout" => Some(meta_str(obj, "name").to_string()),
            "ReplicaSet" => workload(obj),
            "Pod" => controller_owner(obj, "ReplicaSet")
                .and_then(|rs| self.get(&resources::REPLICASETS, &ns, rs))
                .and_then(|rs| workload(&rs)),
            _ => None,
        };
        if let Some(name) = deployment {
            self.dirty.insert((ns, name));
        }
    }

    fn index_owners(&mut self, res: &'static ResourceDef, obj: &Value) {
        let (ns, name) = key_of(obj);
        for uid in owner_refs(obj).filter_map(|r| r["uid"].as_str()) {
            self.owned.entry(uid.to_string()).or_default().insert((
                res.plural,
                ns.clone(),
                name.clone(),
            ));
        }
    }

    fn unindex_owners(&mut self, res: &'static ResourceDef, obj: &Value) {
        let (ns, name) = key_of(obj);
        for uid in owner_refs(obj).filter_map(|r| r["uid"].as_str()) {
            if let Some(set) = self.owned.get_mut(uid) {
                set.remove(&(res.plural, ns.clone(), name.clone()));
            }
        }
    }
}

/// Where a list starts: after its continue key, else at its namespace's first key.
fn range_start(ns: Option<&str>, after: Option<&ObjKey>) -> Bound<ObjKey> {
    match (after, ns) {
        (Some(key), _) => Bound::Excluded(key.clone()),
        (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
        (None, None) => Bound::Unbounded,
    }
}

/// Five characters from the alphabet Kubernetes uses for generated names.
pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| {
            let i = rng.random_range(0..SAFE_ALPHABET.len());
            SAFE_ALPHABET[i] as char
        })
        .collect()
}
