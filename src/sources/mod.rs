//! Where messages come from: Kubernetes watchers, the Prometheus poller, the
//! Alertmanager poller, the Terraform state reader, the alias reader (Lambda, MLflow), the feature flag reader, and
//! the reader of the pod the console opened. Each sends typed messages by value into the
//! core's one channel.

pub mod alertmanager;
pub mod aliases;
pub mod flags;
pub mod kube;
pub mod kube_client;
pub mod lean;
pub mod pod_view;
pub mod poller;
pub mod prometheus;
pub mod terraform;
