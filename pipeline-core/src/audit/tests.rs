use chrono::TimeZone;

use super::*;

fn key() -> AuditKey {
    AuditKey::from_bytes([7; 32])
}

fn chain_under(key: &AuditKey, n: i64) -> Vec<ChainLink> {
    let mut out: Vec<ChainLink> = Vec::new();
    for id in 1..=n {
        let prev = out.last().map_or(GENESIS.to_vec(), |l| l.hash.clone());
        let parts = ["ana".to_string(), "alarm.ack".into(), format!("alarm {id}"), "reseated".into()];
        let hash = link(key, &prev, id * 1000, ["ana", "alarm.ack", &parts[2], "reseated"]).to_vec();
        out.push(ChainLink { id, at_millis: id * 1000, parts, prev_hash: prev, hash });
    }
    out
}

fn sealed(chain: &[ChainLink]) -> Checkpoint {
    let head = chain.last().unwrap();
    Checkpoint::seal(&key(), head.id, head.hash.clone().try_into().unwrap(), Utc.timestamp_opt(100, 0).unwrap())
}

#[test]
fn an_intact_chain_verifies_against_its_checkpoint() {
    let c = chain_under(&key(), 3);
    let v = verify(&key(), &c, Some(&sealed(&c)));
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.entries, v.first_broken), (3, None));
}

#[test]
fn an_altered_field_breaks_its_entry() {
    let mut c = chain_under(&key(), 3);
    let cp = sealed(&c);
    c[1].parts[3] = "nothing happened".into();
    assert_eq!(verify(&key(), &c, Some(&cp)).first_broken, Some(2));
}

#[test]
fn a_removed_middle_entry_is_named() {
    let mut c = chain_under(&key(), 3);
    let cp = sealed(&c);
    c.remove(1);
    let v = verify(&key(), &c, Some(&cp));
    assert_eq!(v.first_broken, Some(2));
    assert!(v.problem.unwrap().contains("entry 2 is missing"));
}

#[test]
fn a_cut_tail_is_caught_by_the_checkpoint() {
    let mut c = chain_under(&key(), 5);
    let cp = sealed(&c);
    c.truncate(3);
    let v = verify(&key(), &c, Some(&cp));
    assert_eq!(v.first_broken, Some(4));
    assert!(v.problem.unwrap().contains("entries 4 to 5 are missing"));
}

#[test]
fn a_chain_rewritten_without_the_key_fails_at_its_first_entry() {
    let forged = chain_under(&AuditKey::from_bytes([9; 32]), 3);
    assert_eq!(verify(&key(), &forged, None).first_broken, Some(1));
}

#[test]
fn a_checkpoint_sealed_without_the_key_is_refused() {
    let c = chain_under(&key(), 2);
    let head = c.last().unwrap();
    let forged = Checkpoint::seal(
        &AuditKey::from_bytes([9; 32]),
        head.id,
        head.hash.clone().try_into().unwrap(),
        Utc.timestamp_opt(100, 0).unwrap(),
    );
    assert!(verify(&key(), &c, Some(&forged)).problem.unwrap().contains("seal"));
}

#[test]
fn a_missing_checkpoint_is_a_problem_once_there_are_entries() {
    assert!(verify(&key(), &[], None).intact());
    assert!(!verify(&key(), &chain_under(&key(), 1), None).intact());
}
