//! The CAB gate: whether the ServiceNow change request the sink filed for a Slipway change is
//! approved (`approval` = `approved`), so the bridge can hold the merge until it is. The change
//! is found by its `correlation_id` (the Slipway change id, set when the sink created it), not
//! by the sink's local map, so any replica can ask.

use hyper::Method;
use serde_json::Value;

use super::http::Http;
use super::servicenow::ServiceNowSettings;

/// What ServiceNow says of a change's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cab {
    /// No change request carries this change id yet (the sink files it shortly after the PR
    /// opens).
    NotFiled,
    /// Its `number` (`CHG0030001`) and `approval` (`not requested`, `requested`, `approved`,
    /// `rejected`, …).
    Filed { number: String, approval: String },
}

impl Cab {
    pub fn approved(&self) -> bool {
        matches!(self, Cab::Filed { approval, .. } if approval == "approved")
    }
}

/// See the module docs.
pub struct CabGate {
    settings: ServiceNowSettings,
    http: Http,
}

/// The `Authorization` header carries the credentials: never printed.
impl std::fmt::Debug for CabGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CabGate")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

impl CabGate {
    pub fn new(settings: ServiceNowSettings) -> Result<CabGate, String> {
        Ok(CabGate {
            http: Http::new(settings.timeout)?,
            settings,
        })
    }

    /// The approval of the change request filed for `change_id`. Two change requests claiming
    /// the same id is an error: someone filed one by hand, and neither is trusted.
    pub async fn approval(&self, change_id: &str) -> Result<Cab, String> {
        let query = serde_urlencoded::to_string([
            ("sysparm_query", format!("correlation_id={change_id}")),
            ("sysparm_fields", "number,approval".to_string()),
            ("sysparm_limit", "2".to_string()),
        ])
        .map_err(|e| e.to_string())?;
        let url = format!(
            "{}/api/now/table/change_request?{query}",
            self.settings.url.trim_end_matches('/')
        );
        let auth = self.settings.auth.header();
        let headers = [
            ("authorization", auth.as_str()),
            ("accept", "application/json"),
        ];
        let resp = self
            .http
            .send(Method::GET, &url, &headers, None)
            .await
            .map_err(|e| format!("asking ServiceNow: {e}"))?;
        if !(200..300).contains(&resp.status) {
            return Err(format!("ServiceNow answered {}", resp.status));
        }
        let body: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("ServiceNow's answer is not JSON: {e}"))?;
        let found = body["result"].as_array().cloned().unwrap_or_default();
        match found.as_slice() {
            [] => Ok(Cab::NotFiled),
            [one] => Ok(Cab::Filed {
                number: one["number"].as_str().unwrap_or("?").to_string(),
                approval: one["approval"].as_str().unwrap_or("").to_string(),
            }),
            _ => Err(format!(
                "several ServiceNow change requests carry correlation id {change_id}"
            )),
        }
    }
}
