//! `GET /api/v1/gpu/devices` and `/api/v1/gpu/driver`, in the shapes of the network
//! engine's GPU routes (its `api/gpu/routes.py` and `types.py`), with what the backend can
//! tell: names and memory on CUDA, the adapter's name on wgpu, nothing on the CPU. Behind the
//! signature check (auth.rs), as there (docs/spec/PROTOCOLS.md §A10).

use super::app::App;
use super::http::{ApiError, ok};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use powhost_core::{GpuDevice, GpuDriver};
use serde_json::{Value, json};
use std::sync::Arc;

/// What the reference answers (503) where it finds no NVIDIA driver.
const NO_DRIVER: &str = "NVML not initialized. GPU features are not available.";

pub async fn devices(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let host = app.host.clone();
    // A device query may wait on the driver: off the async threads.
    let gpus = tokio::task::spawn_blocking(move || host.compute.backend().gpus())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(ok(devices_body(&gpus)))
}

pub async fn driver(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let host = app.host.clone();
    let driver = tokio::task::spawn_blocking(move || host.compute.backend().gpu_driver())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    driver_body(driver).map(ok)
}

/// `GPUDevicesResponse`: memory in MiB (the reference's `_mb`, bytes // 2²⁰); utilisation
/// and temperature, which only NVML tells, are null, as the reference leaves fields it
/// cannot query.
fn devices_body(gpus: &[GpuDevice]) -> Value {
    let mib = |bytes: Option<u64>| bytes.map(|b| b >> 20);
    let devices: Vec<Value> = gpus
        .iter()
        .map(|gpu| {
            let used = gpu
                .total_memory_bytes
                .zip(gpu.free_memory_bytes)
                .map(|(total, free)| total.saturating_sub(free));
            json!({
                "index": gpu.index,
                "name": gpu.name,
                "total_memory_mb": mib(gpu.total_memory_bytes),
                "free_memory_mb": mib(gpu.free_memory_bytes),
                "used_memory_mb": mib(used),
                "utilization_percent": null,
                "temperature_c": null,
                "is_available": gpu.error.is_none(),
                "error_message": gpu.error,
            })
        })
        .collect();
    json!({ "count": devices.len(), "devices": devices })
}

/// `DriverInfo`, or the reference's 503 where there is no driver or it cannot tell its
/// versions. NVML's own version is the CUDA major version and the driver's
/// (`12.535.104.05`), as NVML reports it.
fn driver_body(driver: Option<GpuDriver>) -> Result<Value, ApiError> {
    let unavailable = |detail: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail);
    let driver = driver.ok_or_else(|| unavailable(NO_DRIVER.into()))?;
    let (Some(version), Some(cuda)) = (driver.driver_version, driver.cuda_driver_version) else {
        return Err(unavailable(
            "Failed to query driver information: the NVIDIA kernel module's version (/proc/driver/nvidia/version) or the CUDA driver's could not be read".into(),
        ));
    };
    let cuda_major = cuda.split('.').next().unwrap_or_default();
    Ok(json!({
        "driver_version": version,
        "cuda_driver_version": cuda,
        "nvml_version": format!("{cuda_major}.{version}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_reported_in_the_references_shape() {
        let gpus = [
            GpuDevice {
                index: 0,
                name: "NVIDIA H200".into(),
                total_memory_bytes: Some(150_754_820_096),
                free_memory_bytes: Some(150_000_000_000),
                error: None,
            },
            GpuDevice {
                index: 1,
                name: "Unknown".into(),
                error: Some("CUDA_ERROR_ECC_UNCORRECTABLE".into()),
                ..GpuDevice::default()
            },
        ];
        assert_eq!(
            devices_body(&gpus),
            json!({"count": 2, "devices": [
                {"index": 0, "name": "NVIDIA H200", "total_memory_mb": 143771,
                 "free_memory_mb": 143051, "used_memory_mb": 719, "utilization_percent": null,
                 "temperature_c": null, "is_available": true, "error_message": null},
                {"index": 1, "name": "Unknown", "total_memory_mb": null, "free_memory_mb": null,
                 "used_memory_mb": null, "utilization_percent": null, "temperature_c": null,
                 "is_available": false, "error_message": "CUDA_ERROR_ECC_UNCORRECTABLE"},
            ]})
        );
    }

    #[test]
    fn the_driver_is_reported_in_the_references_shape_or_refused_as_there() {
        let driver = GpuDriver {
            driver_version: Some("580.82.07".into()),
            cuda_driver_version: Some("13.0".into()),
        };
        assert_eq!(
            driver_body(Some(driver.clone())).unwrap(),
            json!({"driver_version": "580.82.07", "cuda_driver_version": "13.0", "nvml_version": "13.580.82.07"})
        );
        let refused = driver_body(None).unwrap_err();
        assert_eq!(
            (refused.status, refused.detail.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, NO_DRIVER)
        );
        let partial = GpuDriver {
            driver_version: None,
            ..driver
        };
        let refused = driver_body(Some(partial)).unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            refused
                .detail
                .starts_with("Failed to query driver information: ")
        );
    }
}
