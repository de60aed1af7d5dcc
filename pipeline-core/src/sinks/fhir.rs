//! The FHIR REST adapter: events go as transaction Bundles, every resource created conditionally on
//! its identifier, so a retry after a lost response creates nothing new.
//!
//! A batch that the server refuses as a whole is split and sent event by event, so one bad event
//! goes to the dead-letter list alone and the others still go through.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::Value;

use super::smart::SmartClient;
use super::{MAX_BODY, Outcome, Sink, bounded_body};
use crate::clock::SharedClock;
use crate::config::EhrEnvironment;
use crate::fhir::bundle::{EventEnvelope, transaction};
use crate::store::OutboxItem;

/// How the adapter authenticates.
pub enum Auth {
    /// No authentication (a test server, a trusted network).
    None,
    /// A fixed bearer token (from the environment).
    Bearer(String),
    /// SMART Backend Services.
    Smart(SmartClient),
}

/// A FHIR R4 server.
pub struct FhirSink {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    environment: EhrEnvironment,
    clock: SharedClock,
}

/// A failed request: how it failed, and what the server or the network said.
#[derive(Debug)]
struct Failure {
    kind: Failed,
    text: String,
}

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// Network, timeout, 5xx, 429, an oversized answer: try again later.
    Retryable,
    /// The server refused the request's content, saying why (an OperationOutcome).
    Refused,
    /// The server refuses Vigil itself: 401, or 403/404 without an OperationOutcome (a proxy, a
    /// wrong base URL, a missing permission). No event is at fault.
    Configuration,
}

impl Failure {
    fn retryable(text: String) -> Failure {
        Failure { kind: Failed::Retryable, text }
    }

    /// The outcome for one event.
    fn outcome(self) -> Outcome {
        match self.kind {
            Failed::Retryable => Outcome::Retryable(self.text),
            Failed::Refused => Outcome::Permanent(self.text),
            Failed::Configuration => Outcome::Configuration(self.text),
        }
    }
}

/// What the EHR says about a patient identifier, for pairing verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientLookup {
    /// Exactly one.
    One(FoundPatient),
    /// None known.
    Unknown,
    /// Several (an identifier that does not identify): pairing must be refused.
    Ambiguous(usize),
}

/// The one patient the EHR knows by an identifier: what an operator checks before pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPatient {
    /// The Patient resource id.
    pub id: String,
    /// The official (or first) name, as text. PHI: console only.
    pub name: Option<String>,
    /// The birth date, as the EHR gives it. PHI: console only.
    pub birth_date: Option<String>,
}

/// A Patient's name as one line: `text`, else given names and family.
fn name_of(patient: &Value) -> Option<String> {
    let names = patient["name"].as_array()?;
    let name = names.iter().find(|n| n["use"] == "official").or(names.first())?;
    if let Some(text) = name["text"].as_str() {
        return Some(text.to_string());
    }
    let given = name["given"].as_array().into_iter().flatten().filter_map(Value::as_str);
    let parts: Vec<&str> = given.chain(name["family"].as_str()).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The readable text of an OperationOutcome (diagnostics and details of each issue).
pub fn outcome_text(body: &Value) -> Option<String> {
    let issues = body["issue"].as_array()?;
    let texts: Vec<String> = issues
        .iter()
        .filter_map(|i| {
            let text = i["diagnostics"].as_str().or_else(|| i["details"]["text"].as_str())?;
            Some(format!("{}: {text}", i["severity"].as_str().unwrap_or("error")))
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}

impl FhirSink {
    /// A sink for the server at `base` (e.g. `https://ehr.example/fhir/R4`).
    pub fn new(
        base: &str,
        auth: Auth,
        timeout: Duration,
        environment: EhrEnvironment,
        clock: SharedClock,
    ) -> Result<FhirSink, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).build()?;
        Ok(FhirSink { http, base: base.trim_end_matches('/').to_string(), auth, environment, clock })
    }

    async fn authorised(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Smart(smart) => request.bearer_auth(
                smart
                    .token(&self.http)
                    .await
                    // Never the event's fault: a refused client is a configuration to fix, so the event waits.
                    .map_err(|e| match e {
                        super::smart::SmartError::Unreachable(_) => Failure::retryable(e.to_string()),
                        _ => Failure { kind: Failed::Configuration, text: e.to_string() },
                    })?,
            ),
        })
    }

    /// Sends a request and classifies the answer.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let request = self.authorised(request.header("Accept", "application/fhir+json")).await?;
        let response = request.send().await.map_err(|e| Failure::retryable(format!("EHR unreachable: {e}")))?;
        let status = response.status();
        let body = bounded_body(response, MAX_BODY)
            .await
            .map_err(|e| Failure::retryable(format!("HTTP {}: {e}", status.as_u16())))?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        if status == StatusCode::UNAUTHORIZED
            && let Auth::Smart(smart) = &self.auth
        {
            smart.invalidate().await;
        }
        let outcome = outcome_text(&body);
        let kind = match status {
            s if s.is_server_error() => Failed::Retryable,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => Failed::Retryable,
            StatusCode::UNAUTHORIZED => Failed::Configuration,
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND if outcome.is_none() => Failed::Configuration,
            _ => Failed::Refused,
        };
        let text = outcome.unwrap_or_else(|| format!("HTTP {status} without an OperationOutcome"));
        Err(Failure { kind, text: format!("HTTP {}: {text}", status.as_u16()) })
    }

    /// Looks a patient up by identifier (`Patient?identifier=system|value`).
    pub async fn find_patient(&self, system: &str, value: &str) -> Result<PatientLookup, String> {
        let request = self
            .http
            .get(format!("{}/Patient", self.base))
            .query(&[("identifier", crate::fhir::search_token(system, value))]);
        let bundle = self.exchange(request).await.map_err(|f| f.text)?;
        let found: Vec<FoundPatient> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .filter(|r| r["resourceType"] == "Patient")
            .filter_map(|r| {
                Some(FoundPatient {
                    id: r["id"].as_str()?.to_string(),
                    name: name_of(r),
                    birth_date: r["birthDate"].as_str().map(str::to_string),
                })
            })
            .collect();
        Ok(match found.as_slice() {
            [] => PatientLookup::Unknown,
            [one] => PatientLookup::One(one.clone()),
            many => PatientLookup::Ambiguous(many.len()),
        })
    }

    /// The server's CapabilityStatement FHIR version, as proof that it answers (with our auth).
    async fn capability(&self) -> Result<String, String> {
        let statement = self.exchange(self.http.get(format!("{}/metadata", self.base))).await.map_err(|f| f.text)?;
        Ok(statement["fhirVersion"].as_str().unwrap_or("unknown").to_string())
    }

    async fn send(&self, items: &[&OutboxItem]) -> Result<Vec<Outcome>, Failure> {
        let envelopes: Vec<EventEnvelope<'_>> = items
            .iter()
            .map(|i| EventEnvelope {
                event: &i.event,
                hash: i.hash.clone(),
                patient: &i.patient,
                issued: self.clock.now(),
                environment: self.environment,
                device: &i.device,
            })
            .collect();
        let (bundle, ranges) = transaction(&envelopes);
        let request = self.http.post(&self.base).header("Content-Type", "application/fhir+json").json(&bundle);
        let response = self.exchange(request).await?;
        let entries = response["entry"].as_array().cloned().unwrap_or_default();
        Ok(ranges
            .into_iter()
            .map(|range| {
                let mut location = None;
                for entry in range.clone().filter_map(|i| entries.get(i)) {
                    let status = entry["response"]["status"].as_str().unwrap_or("");
                    let code: u16 = status.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(0);
                    let text = || outcome_text(&entry["response"]["outcome"]).unwrap_or_else(|| status.to_string());
                    match code {
                        200..=299 => location = entry["response"]["location"].as_str().map(str::to_string).or(location),
                        408 | 429 | 500..=599 => return Outcome::Retryable(format!("entry answered {}", text())),
                        _ => return Outcome::Permanent(format!("entry answered {}", text())),
                    }
                }
                if entries.len() < range.end {
                    return Outcome::Retryable("the EHR's response has fewer entries than the request".into());
                }
                Outcome::Delivered(location)
            })
            .collect())
    }
}

#[async_trait]
impl Sink for FhirSink {
    fn name(&self) -> &str {
        "fhir"
    }

    async fn probe(&self) -> Result<String, String> {
        let version = self.capability().await?;
        Ok(format!("FHIR server at {} answers (FHIR {version})", self.base))
    }

    async fn deliver(&self, items: &[OutboxItem]) -> Vec<Outcome> {
        let all: Vec<&OutboxItem> = items.iter().collect();
        match self.send(&all).await {
            Ok(outcomes) => outcomes,
            Err(f) if f.kind != Failed::Refused || items.len() == 1 => {
                let outcome = f.outcome();
                vec![outcome; items.len()]
            }
            // Refused as a whole: find out which event the server objects to.
            Err(_) => {
                let mut outcomes = Vec::with_capacity(items.len());
                for item in items {
                    outcomes.push(match self.send(&[item]).await {
                        Ok(mut one) => one.pop().unwrap_or(Outcome::Retryable("empty response".into())),
                        Err(f) => f.outcome(),
                    });
                }
                outcomes
            }
        }
    }
}
