//! The resource types the simulated API server knows: one table drives discovery,
//! routing, RBAC and the store, so adding a resource is one entry here.

/// One served resource, as discovery describes it.
#[derive(Debug)]
pub struct ResourceDef {
    /// Empty for the core group (`/api/v1`).
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Create-only review resources are answered, never stored.
    pub review: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    /// `pods/log`: read only, as text.
    Log,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Log => "log",
        }
    }
}

const READ_WRITE: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const CREATE_ONLY: &[&str] = &["create"];

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` style name, as Kubernetes error messages print it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        if self.review {
            CREATE_ONLY
        } else {
            READ_WRITE
        }
    }

    /// Whether spec or annotation changes bump `metadata.generation`.
    pub fn tracks_generation(&self) -> bool {
        matches!(self.kind, "Deployment" | "ReplicaSet" | "Job" | "Rollout")
    }

    pub fn has_subresource(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }
}

macro_rules! resource {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr, $short:expr, $subs:expr) => {
        ResourceDef {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            short_names: $short,
            subresources: $subs,
            review: false,
        }
    };
}

pub static NAMESPACES: ResourceDef = resource!(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    false,
    &["ns"],
    &[]
);
pub static PODS: ResourceDef = resource!(
    "",
    "v1",
    "pods",
    "pod",
    "Pod",
    true,
    &["po"],
    &[Subresource::Status, Subresource::Log]
);
pub static SERVICES: ResourceDef = resource!(
    "",
    "v1",
    "services",
    "service",
    "Service",
    true,
    &["svc"],
    &[]
);
pub static CONFIGMAPS: ResourceDef = resource!(
    "",
    "v1",
    "configmaps",
    "configmap",
    "ConfigMap",
    true,
    &["cm"],
    &[]
);
pub static SECRETS: ResourceDef =
    resource!("", "v1", "secrets", "secret", "Secret", true, &[], &[]);
pub static EVENTS: ResourceDef =
    resource!("", "v1", "events", "event", "Event", true, &["ev"], &[]);
pub static DEPLOYMENTS: ResourceDef = resource!(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    true,
    &["deploy"],
    &[Subresource::Status, Subresource::Scale]
);
pub static REPLICASETS: ResourceDef = resource!(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    true,
    &["rs"],
    &[Subresource::Status, Subresource::Scale]
);
/// Argo Rollouts' Rollout, as its CRD serves it: a canary with status and scale.
pub static ROLLOUTS: ResourceDef = resource!(
    "argoproj.io",
    "v1alpha1",
    "rollouts",
    "rollout",
    "Rollout",
    true,
    &["ro"],
    &[Subresource::Status, Subresource::Scale]
);
pub static JOBS: ResourceDef = resource!(
    "batch",
    "v1",
    "jobs",
    "job",
    "Job",
    true,
    &[],
    &[Subresource::Status]
);
pub static LEASES: ResourceDef = resource!(
    "coordination.k8s.io",
    "v1",
    "leases",
    "lease",
    "Lease",
    true,
    &[],
    &[]
);
pub static HPAS: ResourceDef = resource!(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    "horizontalpodautoscaler",
    "HorizontalPodAutoscaler",
    true,
    &["hpa"],
    &[]
);
pub static SELF_SUBJECT_REVIEWS: ResourceDef = ResourceDef {
    review: true,
    ..resource!(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        false,
        &[],
        &[]
    )
};
pub static SELF_SUBJECT_ACCESS_REVIEWS: ResourceDef = ResourceDef {
    review: true,
    ..resource!(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        &[],
        &[]
    )
};

pub static ALL: &[&ResourceDef] = &[
    &NAMESPACES,
    &PODS,
    &SERVICES,
    &CONFIGMAPS,
    &SECRETS,
    &EVENTS,
    &DEPLOYMENTS,
    &REPLICASETS,
    &JOBS,
    &LEASES,
    &HPAS,
    &ROLLOUTS,
    &SELF_SUBJECT_REVIEWS,
    &SELF_SUBJECT_ACCESS_REVIEWS,
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    ALL.iter()
        .copied()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The groups in discovery order, each with its one served version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in ALL.iter().filter(|r| !r.group.is_empty()) {
        if !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out
}
