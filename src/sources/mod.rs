//! Where messages come from: Kubernetes watchers and the Prometheus poller. Each
//! sends typed messages by value into the core's one channel.

pub mod kube;
pub mod lean;
pub mod poller;
pub mod prometheus;
