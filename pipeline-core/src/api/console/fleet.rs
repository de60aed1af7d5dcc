//! The fleet view: every device registered or heard, and how it stands.

use std::collections::HashMap;

use super::Console;
use crate::accounts::Action;
use crate::api::dto::{DeviceState, FleetDevice};
use crate::api::error::ApiResult;
use crate::normalise::DEFAULT_INTERVAL_SECS;
use crate::store::DeviceHeard;

/// A device is stale after this many of its intervals without a payload.
const STALE_INTERVALS: u32 = 3;
/// And offline after this many, when no no-data rule watches its profile.
const OFFLINE_INTERVALS: u32 = 10;

/// How long a device of `profile` may be silent before it is stale, and before it is offline.
fn bounds(console: &Console, profile: Option<&str>) -> (u32, u32, u32) {
    let interval = profile
        .and_then(|p| console.handle.profiles().get(p))
        .map_or(DEFAULT_INTERVAL_SECS, |p| p.expected_interval_secs);
    let stale = STALE_INTERVALS * interval;
    let offline = profile.and_then(|p| console.handle.no_data_after(p)).unwrap_or(OFFLINE_INTERVALS * interval);
    (interval, stale, offline.max(stale))
}

/// Where a device heard `silent_secs` ago stands.
fn state(silent_secs: f64, stale_after: u32, offline_after: u32) -> DeviceState {
    if silent_secs > f64::from(offline_after) {
        DeviceState::Offline
    } else if silent_secs > f64::from(stale_after) {
        DeviceState::Stale
    } else {
        DeviceState::Online
    }
}

impl Console {
    /// Every registered device and every unknown sender, with its state, when it was last heard,
    /// its rate, the validity of its newest readings, its status, pairing and quarantine.
    pub async fn fleet(&self) -> ApiResult<Vec<FleetDevice>> {
        let actor = self.actor()?;
        self.admin.permit(&actor, Action::View).await?;
        let now = self.admin.clock().now();
        let registered = self.admin.devices(&actor).await?;
        let mut heard: HashMap<String, DeviceHeard> =
            self.store().device_status().await?.into_iter().map(|h| (h.device_id.clone(), h)).collect();
        let rates = self.handle.message_rates(now);
        let clocks: HashMap<String, i64> =
            self.handle.device_clocks().into_iter().map(|c| (c.device_id, c.offset_secs)).collect();
        let mut quarantined: HashMap<String, u64> = HashMap::new();
        for g in self.store().quarantine_groups().await? {
            *quarantined.entry(g.device_id).or_default() += g.count;
        }
        let labels = self.labels(registered.iter().filter_map(|d| d.patient_id).collect()).await?;
        let row = |device_id: String, heard: Option<DeviceHeard>, profile_id: Option<String>| {
            let (interval, stale_after, offline_after) = bounds(self, profile_id.as_deref());
            let silent_secs = heard.as_ref().map(|h| (now - h.last_heard).num_milliseconds().max(0) as f64 / 1000.0);
            FleetDevice {
                state: silent_secs.map_or(DeviceState::NeverSeen, |s| state(s, stale_after, offline_after)),
                registered: true,
                label: None,
                origin: heard.as_ref().map(|h| h.origin.clone()),
                last_heard: heard.as_ref().map(|h| h.last_heard),
                silent_secs,
                expected_interval_secs: interval,
                stale_after_secs: stale_after,
                offline_after_secs: offline_after,
                messages_per_min: rates.get(&device_id).copied().unwrap_or(0.0),
                messages: heard.as_ref().map_or(0, |h| h.messages),
                latest_validity: heard.as_ref().map(|h| h.validity),
                battery_pct: heard.as_ref().and_then(|h| h.battery_pct),
                firmware: heard.as_ref().and_then(|h| h.firmware.clone()),
                clock_offset_secs: clocks.get(&device_id).copied(),
                patient_id: None,
                patient_label: None,
                paired_since: None,
                quarantined: quarantined.get(&device_id).copied().unwrap_or(0),
                demo: false,
                profile_id,
                device_id,
            }
        };
        let mut fleet = Vec::with_capacity(registered.len() + heard.len());
        for d in registered {
            let h = heard.remove(&d.device_id);
            let profile = d.profile_id.clone().or_else(|| h.as_ref().and_then(|h| h.profile_id.clone()));
            fleet.push(FleetDevice {
                label: d.label,
                patient_label: d.patient_id.and_then(|p| labels.get(&p).cloned()),
                patient_id: d.patient_id,
                paired_since: d.paired_since,
                demo: d.demo,
                ..row(d.device_id, h, profile)
            });
        }
        for (device_id, h) in heard {
            let profile = h.profile_id.clone();
            fleet.push(FleetDevice {
                state: DeviceState::Unknown,
                registered: false,
                ..row(device_id, Some(h), profile)
            });
        }
        fleet.sort_by(|a, b| (a.state, &a.device_id).cmp(&(b.state, &b.device_id)));
        Ok(fleet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_online_then_stale_then_offline_as_its_silence_grows() {
        assert_eq!(state(2.0, 6, 60), DeviceState::Online);
        assert_eq!(state(6.5, 6, 60), DeviceState::Stale);
        assert_eq!(state(60.5, 6, 60), DeviceState::Offline);
    }
}
