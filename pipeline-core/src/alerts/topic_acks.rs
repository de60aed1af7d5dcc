//! Which pages on the MQTT alert topic the broker has acknowledged. rumqttc gives a QoS 1 publish
//! its packet id only when its event loop sends it, in the order the publishes were queued, so the
//! pages queued are matched to packet ids in that order. A publish resent after a reconnect keeps
//! its id, so it matches no new page; the broker's PUBACK for an id settles its page as delivered.

use std::collections::{HashMap, VecDeque};

use super::deliveries::PageLog;

/// The console's name for the alert topic.
pub(super) const ALERT_TOPIC: &str = "alert topic";

/// One page: which alarm, at which escalation step.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageRef {
    alarm_key: String,
    step: u8,
}

/// Pages queued on the alert topic's connection and not yet sent, and those sent and not yet
/// acknowledged. Both are bounded by rumqttc: the request channel's capacity and the packet-id
/// space.
pub(super) struct TopicAcks {
    queued: VecDeque<PageRef>,
    in_flight: HashMap<u16, PageRef>,
    log: PageLog,
}

impl TopicAcks {
    pub fn new(log: PageLog) -> Self {
        Self { queued: VecDeque::new(), in_flight: HashMap::new(), log }
    }

    /// A page about to be queued for publishing: noted as sending.
    pub fn queue(&mut self, alarm_key: &str, step: u8) {
        self.log.sent(alarm_key, step, ALERT_TOPIC, None);
        self.queued.push_back(PageRef { alarm_key: alarm_key.to_string(), step });
    }

    /// The page just queued was refused by the connection: failed, with why.
    pub fn refused(&mut self, why: String) {
        if let Some(page) = self.queued.pop_back() {
            self.log.settled(&page.alarm_key, page.step, ALERT_TOPIC, Err(why));
        }
    }

    /// The event loop sent a publish with this packet id: the oldest queued page, unless the id is
    /// already in flight (a publish resent after a reconnect).
    pub fn sent(&mut self, pkid: u16) {
        if self.in_flight.contains_key(&pkid) {
            return;
        }
        if let Some(page) = self.queued.pop_front() {
            self.in_flight.insert(pkid, page);
        }
    }

    /// The broker acknowledged this packet id: its page is delivered to the broker.
    pub fn acked(&mut self, pkid: u16) {
        if let Some(page) = self.in_flight.remove(&pkid) {
            self.log.settled(&page.alarm_key, page.step, ALERT_TOPIC, Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dto::DeliveryState;

    fn acks() -> (TopicAcks, PageLog) {
        let log = PageLog::new(crate::clock::system());
        (TopicAcks::new(log.clone()), log)
    }

    fn state(log: &PageLog, key: &str, step: u8) -> Option<DeliveryState> {
        log.of(key).iter().find(|p| p.step == step && p.sink == ALERT_TOPIC).map(|p| p.state)
    }

    #[test]
    fn pages_are_matched_to_packet_ids_in_the_order_they_go_out_and_settled_by_their_acknowledgement() {
        let (mut acks, log) = acks();
        acks.queue("a", 0);
        acks.queue("b", 0);
        acks.queue("a", 1);
        acks.sent(7);
        acks.sent(8);
        // Resent after a reconnect: the same id, no new page.
        acks.sent(7);
        acks.sent(9);
        acks.acked(8);
        assert_eq!(state(&log, "b", 0), Some(DeliveryState::Delivered));
        assert_eq!(state(&log, "a", 0), Some(DeliveryState::Sending));
        acks.acked(7);
        acks.acked(9);
        assert_eq!(state(&log, "a", 0), Some(DeliveryState::Delivered));
        assert_eq!(state(&log, "a", 1), Some(DeliveryState::Delivered), "the escalation, the third sent");
        // An id reused once acknowledged is the next page's.
        acks.queue("c", 0);
        acks.sent(8);
        acks.acked(8);
        assert_eq!(state(&log, "c", 0), Some(DeliveryState::Delivered));
    }

    #[test]
    fn a_page_the_connection_refuses_fails_with_why_and_takes_no_packet_id() {
        let (mut acks, log) = acks();
        acks.queue("a", 0);
        acks.queue("b", 0);
        acks.refused("not queued: the request channel is full".into());
        assert_eq!(state(&log, "b", 0), Some(DeliveryState::Failed));
        acks.sent(1);
        acks.acked(1);
        assert_eq!(state(&log, "a", 0), Some(DeliveryState::Delivered));
    }
}
