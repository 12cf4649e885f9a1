//! A [`ContainerSpec`] as Docker's create request: the options (the name) and the body, with
//! the hardening every container of Hangar's gets whatever the runtime says:
//!
//! - the snapshot bind-mounted read-only through `Mounts` (a missing source fails the create,
//!   where `Binds` would silently create an empty directory);
//! - all capabilities dropped, `no-new-privileges`, not privileged, a pids limit;
//! - `RestartPolicy: no` (Hangar supervises; Docker must not restart behind its back) and no
//!   auto-remove (Hangar reads the exit code and the last log lines first);
//! - `Init`, so SIGTERM reaches the server and its workers are reaped;
//! - GPUs by device id, never `Count` (which always means the first N GPUs, busy or not),
//!   with the memlock and stack limits NVIDIA's containers expect;
//! - its port published on 127.0.0.1 only with an ephemeral host port, or the shared network
//!   joined and nothing published.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointSettings, HostConfig, Mount as DockerMount, MountType,
    NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptions, CreateContainerOptionsBuilder};

use crate::runtime::presets::MODEL_DIR;
use crate::runtime::spec::{ContainerSpec, Devices, Mount, Reach};

/// The key Docker files the server's port under, in `ExposedPorts` and
/// `NetworkSettings.Ports`.
pub fn port_key(port: u16) -> String {
    format!("{port}/tcp")
}

pub fn options(spec: &ContainerSpec) -> CreateContainerOptions {
    CreateContainerOptionsBuilder::new().name(&spec.name).build()
}

pub fn body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mounts = spec
        .mounts
        .iter()
        .map(|mount| match mount {
            Mount::Snapshot { source } => DockerMount {
                target: Some(MODEL_DIR.to_owned()),
                source: Some(source.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            },
            // No source: an anonymous volume, removed with the container (`docker rm -v`).
            Mount::Scratch { target } => DockerMount {
                target: Some(target.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            },
            Mount::Cache { volume, target } => DockerMount {
                target: Some(target.clone()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            },
        })
        .collect();

    let device_request = spec.devices.as_ref().map(|devices| match devices {
        Devices::Nvidia(ids) => DeviceRequest {
            driver: Some("nvidia".to_owned()),
            device_ids: Some(ids.clone()),
            capabilities: Some(vec![vec!["gpu".to_owned()]]),
            ..Default::default()
        },
        Devices::Cdi(ids) => DeviceRequest {
            driver: Some("cdi".to_owned()),
            device_ids: Some(ids.iter().map(|id| format!("nvidia.com/gpu={id}")).collect()),
            ..Default::default()
        },
    });
    // NVIDIA's containers expect these (pinned memory for transfers, deep stacks).
    let ulimits = device_request.is_some().then(|| {
        vec![
            ResourcesUlimits { name: Some("memlock".to_owned()), soft: Some(-1), hard: Some(-1) },
            ResourcesUlimits { name: Some("stack".to_owned()), soft: Some(67_108_864), hard: Some(67_108_864) },
        ]
    });

    let port_key = port_key(spec.port);
    let (port_bindings, network_mode, networking_config) = match &spec.reach {
        Reach::Published => (
            Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    // Empty: Docker picks a free port.
                    host_port: Some(String::new()),
                }]),
            )])),
            None,
            None,
        ),
        Reach::Network { network } => (
            None,
            Some(network.clone()),
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.clone(), EndpointSettings::default())])),
            }),
        ),
    };

    let host_config = HostConfig {
        mounts: Some(mounts),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
        privileged: Some(false),
        pids_limit: Some(spec.pids_limit),
        shm_size: spec.shm_size,
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        auto_remove: Some(false),
        init: Some(true),
        device_requests: device_request.map(|request| vec![request]),
        ulimits,
        port_bindings,
        network_mode,
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        cmd: Some(spec.cmd.clone()),
        env: Some(spec.env.clone()),
        labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        exposed_ports: Some(vec![port_key]),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
