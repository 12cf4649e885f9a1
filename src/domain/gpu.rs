//! What a deployment asks of the GPUs (`GpuRequest`) and what it was given (`GpuAllocation`),
//! with their JSON forms: the API takes the request, the catalog stores both.

use std::fmt;

/// What a deployment asks for.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawGpuRequest", into = "RawGpuRequest")]
pub enum GpuRequest {
    /// `gpus: N`: N whole GPUs, no one else on them.
    Gpus(u32),
    /// `gpu_memory_gib: X`: X GiB of one GPU, shared with other such requests.
    MemoryGib(f64),
}

/// The JSON form: `{"gpus": 2}` or `{"gpu_memory_gib": 16}`.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawGpuRequest {
    Gpus(u32),
    GpuMemoryGib(f64),
}

/// `GpuRequest` is (de)serialized as `RawGpuRequest`, so that is its schema too.
impl utoipa::PartialSchema for GpuRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <RawGpuRequest as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for GpuRequest {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("GpuRequest")
    }
}

impl GpuRequest {
    pub fn gpus(n: u32) -> Result<Self, String> {
        if n == 0 {
            return Err("gpus must be at least 1; leave it out for no GPU".into());
        }
        Ok(Self::Gpus(n))
    }

    pub fn memory_gib(gib: f64) -> Result<Self, String> {
        if !(gib.is_finite() && gib > 0.0) {
            return Err(format!("gpu_memory_gib {gib} must be a positive number of GiB"));
        }
        Ok(Self::MemoryGib(gib))
    }
}

impl TryFrom<RawGpuRequest> for GpuRequest {
    type Error = String;

    fn try_from(raw: RawGpuRequest) -> Result<Self, Self::Error> {
        match raw {
            RawGpuRequest::Gpus(n) => Self::gpus(n),
            RawGpuRequest::GpuMemoryGib(gib) => Self::memory_gib(gib),
        }
    }
}

impl From<GpuRequest> for RawGpuRequest {
    fn from(request: GpuRequest) -> Self {
        match request {
            GpuRequest::Gpus(n) => Self::Gpus(n),
            GpuRequest::MemoryGib(gib) => Self::GpuMemoryGib(gib),
        }
    }
}

impl fmt::Display for GpuRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gpus(1) => f.write_str("1 whole GPU"),
            Self::Gpus(n) => write!(f, "{n} whole GPUs"),
            Self::MemoryGib(gib) => write!(f, "{} GiB of one GPU", gib_text(*gib)),
        }
    }
}

/// What a deployment was given. Stored with the deployment (JSON) so a restarted Hangar
/// knows who holds what.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GpuAllocation {
    Exclusive {
        device_ids: Vec<String>,
    },
    Shared {
        device_id: String,
        memory_gib: f64,
        /// `memory_gib / pool`: what `{mem_fraction}` renders to.
        mem_fraction: f64,
        /// The device's total memory, which vLLM and TGI take their fraction of.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_gib: Option<f64>,
        /// What the other deployments on the device held when this one was placed: the
        /// memory SGLang and llama.cpp will not find free at start.
        #[serde(default)]
        others_gib: f64,
    },
}

impl GpuAllocation {
    pub fn device_ids(&self) -> Vec<String> {
        match self {
            Self::Exclusive { device_ids } => device_ids.clone(),
            Self::Shared { device_id, .. } => vec![device_id.clone()],
        }
    }

    /// The share of memory to hand the server; `None` for whole GPUs.
    pub fn mem_fraction(&self) -> Option<f64> {
        match self {
            Self::Exclusive { .. } => None,
            Self::Shared { mem_fraction, .. } => Some(*mem_fraction),
        }
    }
}

/// GiB for people: at most two decimals, no trailing zeros.
pub(crate) fn gib_text(gib: f64) -> String {
    let text = format!("{gib:.2}");
    let text = text.trim_end_matches('0');
    text.strip_suffix('.').unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_json_and_refuse_nonsense() {
        let parse = |json: &str| serde_json::from_str::<GpuRequest>(json);
        assert_eq!(parse(r#"{"gpus": 2}"#).expect("valid"), GpuRequest::Gpus(2));
        assert_eq!(parse(r#"{"gpu_memory_gib": 16}"#).expect("valid"), GpuRequest::MemoryGib(16.0));
        assert!(parse(r#"{"gpus": 0}"#).expect_err("zero").to_string().contains("at least 1"));
        assert!(parse(r#"{"gpu_memory_gib": -1}"#).is_err());
        assert!(parse(r#"{"gpus": 1, "gpu_memory_gib": 2}"#).is_err());
        assert_eq!(
            serde_json::to_string(&GpuRequest::MemoryGib(8.5)).expect("serializes"),
            r#"{"gpu_memory_gib":8.5}"#
        );
    }

    #[test]
    fn allocations_round_trip_as_json() {
        let exclusive = GpuAllocation::Exclusive { device_ids: vec!["0".into(), "1".into()] };
        let shared = GpuAllocation::Shared {
            device_id: "0".into(),
            memory_gib: 16.0,
            mem_fraction: 0.25,
            device_gib: Some(64.0),
            others_gib: 0.0,
        };
        for allocation in [exclusive, shared] {
            let json = serde_json::to_string(&allocation).expect("serializes");
            let back: GpuAllocation = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, allocation, "{json}");
        }
    }
}
