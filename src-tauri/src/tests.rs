//! The commands through Tauri's IPC (`tauri::test`'s mock runtime) over a real demo console in a
//! temp dir: arguments arrive by their camelCase names, answers and `{code, message}` errors come
//! back as the UI receives them.

use std::path::Path;

use pipeline_core::api::{Console, ConsoleOptions, DemoFiles, ErrorCode, Role, system_clock};
use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, Manager, WebviewWindow, WebviewWindowBuilder};

use crate::{ConsoleState, with_commands};

fn console_app(dir: &Path) -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let options = ConsoleOptions {
        config_path: dir.join("vigil.toml"),
        demo: Some(DemoFiles::in_fixtures(&fixtures)),
        demo_listen: ("127.0.0.1:0".into(), "127.0.0.1:0".into()),
        clock: system_clock(),
    };
    let console = tauri::async_runtime::block_on(Console::start(options)).unwrap();
    let app = with_commands(mock_builder()).build(tauri::generate_context!()).unwrap();
    app.manage(ConsoleState::new(console));
    let window = WebviewWindowBuilder::new(&app, "main", Default::default()).build().unwrap();
    (app, window)
}

fn invoke(window: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().unwrap(),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(window, request).map(|b| b.deserialize::<Value>().unwrap())
}

fn wait_for(what: &str, mut check: impl FnMut() -> Option<Value>) -> Value {
    for _ in 0..100 {
        if let Some(v) = check() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what} did not happen within 10 s");
}

#[test]
fn commands_answer_over_ipc_and_errors_carry_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let (app, window) = console_app(dir.path());

    let board = invoke(&window, "board", json!({})).unwrap();
    assert!(board["components"].as_array().unwrap().iter().any(|c| c["name"] == "store"), "{board}");
    let settings = invoke(&window, "settings", json!({})).unwrap();
    assert_eq!((settings["ehr"]["kind"].as_str(), settings["demo"].as_bool()), (Some("sandbox"), Some(true)));

    let live = wait_for("live values", || {
        let v = invoke(&window, "live_values", json!({})).unwrap();
        v.as_array().unwrap().iter().any(|r| r["device_id"] == "OX-1000").then_some(v)
    });
    let row = live.as_array().unwrap().iter().find(|r| r["device_id"] == "OX-1000" && r["mdc_code"] == 150456).unwrap();
    assert_eq!((row["unit"].as_str(), row["stale"].as_bool()), (Some("%"), Some(false)));
    let svg = invoke(&window, "chart", json!({"deviceId": "OX-1000", "mdcCode": 150456, "minutes": 15})).unwrap();
    assert!(svg.as_str().unwrap().contains("<polyline"));

    let patient =
        invoke(&window, "lookup_patient", json!({"system": super::tests::SYSTEM, "value": "MRN-100001"})).unwrap();
    assert_eq!(patient["display"], "Demo Patient Bravo");
    let refused = invoke(&window, "ack_alarm", json!({"id": 999_999, "reason": "seen"})).unwrap_err();
    assert_eq!(refused["code"], "refused", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("999999"), "{refused}");
    let session = invoke(&window, "session", json!({})).unwrap();
    assert_eq!((session["account"].as_str(), session["demo"].as_bool()), (Some("demo"), Some(true)), "{session}");
    let unknown =
        invoke(&window, "lookup_patient", json!({"system": super::tests::SYSTEM, "value": "MRN-0"})).unwrap_err();
    assert_eq!(unknown["code"], "patient_not_found");

    let pair = |value: &str, replacing: Value| {
        let request = json!({"device_id": "MX-00A1", "system": SYSTEM, "value": value, "replacing": replacing});
        invoke(&window, "pair_device", json!({ "request": request }))
    };
    let spare = |label: &str| {
        let devices = invoke(&window, "devices", json!({})).unwrap();
        let mx = devices.as_array().unwrap().iter().find(|d| d["device_id"] == "MX-00A1").unwrap().clone();
        assert_eq!(mx["patient_label"], label, "{mx}");
        mx["patient_id"].clone()
    };
    pair("MRN-100001", Value::Null).unwrap();
    let bravo = spare("Demo Patient Bravo");
    // Moved to another patient: refused until the patient replaced is named.
    assert_eq!(pair("MRN-100003", Value::Null).unwrap_err()["code"], "refused");
    pair("MRN-100003", bravo).unwrap();
    spare("Demo Patient Delta");
    let outbox = invoke(&window, "outbox", json!({"status": null})).unwrap();
    assert!(outbox.is_array());

    // Signed out, the window may read the board and nothing else; locked, it may not act.
    invoke(&window, "lock", json!({})).unwrap();
    assert_eq!(invoke(&window, "devices", json!({})).unwrap_err()["code"], "unauthenticated");
    assert_eq!(invoke(&window, "unlock", json!({"password": "wrong"})).unwrap_err()["code"], "sign_in_failed");
    assert_eq!(invoke(&window, "unlock", json!({"password": "demo"})).unwrap()["locked"], false);
    assert_eq!(invoke(&window, "sign_out", json!({})).unwrap()["account"], Value::Null);
    assert_eq!(invoke(&window, "alarms", json!({"activeOnly": true})).unwrap_err()["code"], "unauthenticated");
    assert!(invoke(&window, "board", json!({})).is_ok());

    tauri::async_runtime::block_on(app.state::<ConsoleState>().stop());
}

const SYSTEM: &str = "urn:oid:2.16.840.1.113883.19.5.99999.2";

/// The password of every account these tests make.
const PASSWORD: &str = "a long test password";

/// Makes an account with these roles, as the demo's administrator, and a token for its CLI use.
fn account(window: &WebviewWindow<MockRuntime>, site: &Path, name: &str, roles: &[Role]) -> String {
    let state = window.state::<ConsoleState>();
    tauri::async_runtime::block_on(async {
        let console = state.get().await.unwrap();
        console.admin().add_account(&console.actor().unwrap(), name, PASSWORD, roles).await.unwrap();
    });
    let (status, token) = run_vigil(site, &strings(&["accounts", "token", "--ttl", "1", "--user", name]), None);
    assert_eq!(status, 0, "{token}");
    token.lines().find(|l| l.starts_with("vgt_")).expect("a token").to_string()
}

/// The `vigil` binary beside this test's executable (`make test` builds it first), as the account
/// of `token` (nurse ann's when none is given).
fn vigil(site: &Path, args: &[String]) -> (i32, String) {
    let token = std::fs::read_to_string(site.join("nurse-ann.token")).unwrap();
    run_vigil(site, args, Some(&token))
}

fn run_vigil(site: &Path, args: &[String], token: Option<&str>) -> (i32, String) {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("vigil");
    assert!(bin.exists(), "{} is missing: build it first (cargo build -p pipeline-core --bin vigil)", bin.display());
    let mut command = std::process::Command::new(bin);
    command.args(args).arg("--config").arg(site.join("vigil.toml")).env("VIGIL_LOG", "error");
    match token {
        Some(token) => command.env("VIGIL_TOKEN", token.trim()),
        None => command.env_remove("VIGIL_TOKEN").env("VIGIL_PASSWORD", PASSWORD),
    };
    let out = command.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Audit entries an operator left (the pipeline writes its own meanwhile).
fn audited_by(site: &Path, actor: &str) -> usize {
    let (status, text) = vigil(site, &strings(&["audit", "list", "--limit", "100000"]));
    assert_eq!(status, 0, "{text}");
    serde_json::from_str::<Value>(&text).unwrap().as_array().unwrap().iter().filter(|e| e["actor"] == actor).count()
}

/// Both faces refuse the same input with the same code (the CLI as its exit code) and words, and
/// neither leaves an audit entry.
fn same_refusal(window: &WebviewWindow<MockRuntime>, site: &Path, cmd: &str, args: Value, cli: &[String]) -> ErrorCode {
    let before = audited_by(site, "nurse-ann");
    let refused = invoke(window, cmd, args).expect_err(cmd);
    let code: ErrorCode = serde_json::from_value(refused["code"].clone()).unwrap();
    let message = refused["message"].as_str().unwrap();
    let (status, text) = vigil(site, cli);
    assert_eq!(status, i32::from(code.exit_code()), "{cmd}: the console said {refused}; the CLI said {text}");
    assert!(text.contains(message), "{cmd}: the console said {message:?}; the CLI said {text}");
    assert_eq!(audited_by(site, "nurse-ann"), before, "{cmd}: a refused action leaves no audit entry");
    code
}

/// Runs an action through one face and checks it left exactly one audit entry.
fn audited_once<T>(site: &Path, what: &str, act: impl FnOnce() -> T) -> T {
    let before = audited_by(site, "nurse-ann");
    let answer = act();
    assert_eq!(audited_by(site, "nurse-ann"), before + 1, "{what}: one audit entry per action");
    answer
}

#[test]
fn both_faces_give_the_same_answer_to_the_same_operator_action() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path();
    let (app, window) = console_app(site);
    // Nurse ann holds every role, and signs in to both faces.
    let token = account(&window, site, "nurse-ann", &[Role::Clinician, Role::Biomed, Role::Admin]);
    std::fs::write(site.join("nurse-ann.token"), token).unwrap();
    invoke(&window, "sign_in", json!({"name": "nurse-ann", "password": PASSWORD})).unwrap();
    let op = |v: Value| v;
    let cli = |args: &[&str]| -> Vec<String> { strings(args) };
    let pair = |request: Value| op(json!({ "request": request }));
    let at = |minutes| {
        (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let an_hour_ago = at(-60);
    // `vigil pair` of the spare monitor with Bravo, and more.
    let spare_pair = |more: &[&str]| {
        let mut args = strings(&["pair", "--device", "MX-00A1", "--patient-system", SYSTEM, "--patient", "MRN-100001"]);
        args.extend(strings(more));
        args
    };

    // Refusals: the console's rule holds from the terminal too.
    let cases: Vec<(&str, Value, Vec<String>, ErrorCode)> = vec![
        (
            "ack_alarm",
            op(json!({"id": 1, "reason": " "})),
            cli(&["ack", "1", "--reason", " "]),
            ErrorCode::InvalidInput,
        ),
        (
            "silence_alarm",
            op(json!({"id": 1, "reason": "at the bedside", "minutes": 61})),
            cli(&["silence", "1", "--minutes", "61", "--reason", "at the bedside"]),
            ErrorCode::InvalidInput,
        ),
        (
            "register_device",
            op(json!({"deviceId": "OX-7009", "profileId": "no-such-profile", "label": ""})),
            cli(&["devices", "--register", "OX-7009", "--profile", "no-such-profile"]),
            ErrorCode::UnknownProfile,
        ),
        (
            "pair_device",
            pair(json!({"device_id": "MX-00A1", "system": SYSTEM, "value": "MRN-0"})),
            cli(&["pair", "--device", "MX-00A1", "--patient-system", SYSTEM, "--patient", "MRN-0"]),
            ErrorCode::PatientNotFound,
        ),
        (
            "pair_device",
            pair(json!({"device_id": "MX-00A1", "system": SYSTEM, "value": "MRN-100001",
                        "from": "2026-12-01T10:00:00Z", "until": "2026-12-01T09:00:00Z"})),
            spare_pair(&["--from", "2026-12-01T10:00:00Z", "--until", "2026-12-01T09:00:00Z"]),
            ErrorCode::InvalidInput,
        ),
        // The pairing rules: OX-1000 is Alpha's (MRN-100000) since the demo registry was loaded; a
        // pairing that starts in the past needs a reason.
        (
            "pair_device",
            pair(json!({"device_id": "OX-1000", "system": SYSTEM, "value": "MRN-100001"})),
            cli(&["pair", "--device", "OX-1000", "--patient-system", SYSTEM, "--patient", "MRN-100001"]),
            ErrorCode::Refused,
        ),
        (
            "pair_device",
            pair(json!({"device_id": "OX-1000", "system": SYSTEM, "value": "MRN-100000"})),
            cli(&["pair", "--device", "OX-1000", "--patient-system", SYSTEM, "--patient", "MRN-100000"]),
            ErrorCode::Refused,
        ),
        (
            "pair_device",
            pair(json!({"device_id": "MX-00A1", "system": SYSTEM, "value": "MRN-100001", "from": &an_hour_ago})),
            spare_pair(&["--from", &an_hour_ago]),
            ErrorCode::InvalidInput,
        ),
        (
            "set_consent",
            op(json!({"system": SYSTEM, "value": "MRN-0", "flow": "store", "granted": true})),
            cli(&["consent", "--patient-system", SYSTEM, "--patient", "MRN-0", "--flow", "store"]),
            ErrorCode::PatientNotFound,
        ),
        (
            "release_quarantine",
            op(json!({"id": 999_999, "reason": "pairing fixed"})),
            cli(&["release", "999999", "--reason", "pairing fixed"]),
            ErrorCode::NotFound,
        ),
        (
            "discard_quarantine",
            op(json!({"id": 999_999, "reason": "test data"})),
            cli(&["discard", "999999", "--reason", "test data"]),
            ErrorCode::Refused,
        ),
        (
            "pair_and_release",
            op(json!({"request": {"device_id": "MX-00A1", "system": SYSTEM, "value": "MRN-100001"}, "reason": " "})),
            spare_pair(&["--release-quarantine", " "]),
            ErrorCode::InvalidInput,
        ),
        ("resend", op(json!({"id": 999_999})), cli(&["requeue", "999999"]), ErrorCode::NotFound),
        (
            "unpair_device",
            op(json!({"deviceId": "MX-00A1"})),
            cli(&["unpair", "--device", "MX-00A1"]),
            ErrorCode::Refused,
        ),
    ];
    for (cmd, args, cli_args, expected) in cases {
        assert_eq!(same_refusal(&window, site, cmd, args, &cli_args), expected, "{cmd} {cli_args:?}");
    }

    // Results: each face registers its own device, pairs it for a past period with the reason,
    // pairs it open-ended, unpairs it and pairs it until a time; each action leaves one audit entry,
    // and both devices end up alike.
    let (past_from, past_until, until) = (at(-30), at(-20), at(60));
    let reason = "paired late at the bedside";
    for (device, console) in [("OX-7001", true), ("OX-7002", false)] {
        let steps: Vec<(&str, Value, Vec<String>)> = vec![
            (
                "register_device",
                op(json!({"deviceId": device, "profileId": "acme-ox100", "label": "spare"})),
                cli(&["devices", "--register", device, "--profile", "acme-ox100", "--label", "spare"]),
            ),
            (
                "pair_device",
                pair(json!({"device_id": device, "system": SYSTEM, "value": "MRN-100003",
                            "from": past_from, "until": past_until, "reason": reason})),
                cli(&[
                    "pair",
                    "--device",
                    device,
                    "--patient-system",
                    SYSTEM,
                    "--patient",
                    "MRN-100003",
                    "--from",
                    &past_from,
                    "--until",
                    &past_until,
                    "--reason",
                    reason,
                ]),
            ),
            (
                "pair_device",
                pair(json!({"device_id": device, "system": SYSTEM, "value": "MRN-100003"})),
                cli(&["pair", "--device", device, "--patient-system", SYSTEM, "--patient", "MRN-100003"]),
            ),
            ("unpair_device", op(json!({"deviceId": device})), cli(&["unpair", "--device", device])),
            (
                "pair_device",
                pair(json!({"device_id": device, "system": SYSTEM, "value": "MRN-100003", "until": until})),
                cli(&[
                    "pair",
                    "--device",
                    device,
                    "--patient-system",
                    SYSTEM,
                    "--patient",
                    "MRN-100003",
                    "--until",
                    &until,
                ]),
            ),
            (
                "set_consent",
                op(json!({"system": SYSTEM, "value": "MRN-100003", "flow": "ehr-write", "granted": true})),
                cli(&["consent", "--patient-system", SYSTEM, "--patient", "MRN-100003", "--flow", "ehr-write"]),
            ),
        ];
        for (cmd, args, cli_args) in steps {
            audited_once(site, cmd, || {
                if console {
                    invoke(&window, cmd, args).unwrap_or_else(|e| panic!("{cmd}: {e}"));
                } else {
                    let (status, text) = vigil(site, &cli_args);
                    assert_eq!(status, 0, "{cli_args:?}: {text}");
                }
            });
        }
    }
    let devices = invoke(&window, "devices", json!({})).unwrap();
    let period = |id: &str| {
        let d = devices.as_array().unwrap().iter().find(|d| d["device_id"] == id).unwrap();
        (d["profile_id"].clone(), d["label"].clone(), d["patient_id"].clone(), d["paired_until"].clone())
    };
    assert_eq!(period("OX-7001"), period("OX-7002"), "the same actions leave the same registry");
    assert_eq!(period("OX-7001").3, json!(until), "paired for a period, in one action");

    // Quarantine: the unpaired monitor's readings; each face releases one (still quarantined, audited)
    // and discards one.
    let quarantined = wait_for("three quarantined readings", || {
        let q = invoke(&window, "quarantine", json!({})).unwrap();
        (q.as_array().unwrap().len() >= 4).then_some(q)
    });
    let ids: Vec<String> = quarantined.as_array().unwrap().iter().map(|q| q["id"].to_string()).collect();
    audited_once(site, "release", || {
        let r =
            invoke(&window, "release_quarantine", op(json!({"id": ids[0].parse::<i64>().unwrap(), "reason": "check"})));
        assert_eq!(r.unwrap()["outcome"], "quarantined");
    });
    audited_once(site, "release", || {
        let (status, text) = vigil(site, &cli(&["release", &ids[1], "--reason", "check"]));
        assert!(status == 0 && text.contains("still quarantined"), "{text}");
    });
    audited_once(site, "discard", || {
        invoke(&window, "discard_quarantine", op(json!({"id": ids[2].parse::<i64>().unwrap(), "reason": "noise"})))
            .unwrap();
    });
    audited_once(site, "discard", || assert_eq!(vigil(site, &cli(&["discard", &ids[3], "--reason", "noise"])).0, 0));

    // Events are CLI-only. One held by validation (no consent to store or ehr-write) exits 6; requeueing it is
    // refused alike until the consent is recorded, then each face requeues one.
    let held_event = |value: &str| -> i64 {
        let obs = format!("150456={value}");
        let args =
            ["event", "--device", "OX-7002", "--patient-system", SYSTEM, "--patient", "MRN-100002", "--obs", &obs];
        let (status, text) = vigil(site, &cli(&args));
        assert_eq!(status, 6, "{text}");
        text.split("held as outbox ").nth(1).and_then(|s| s.split(':').next()).unwrap().parse().unwrap()
    };
    let first = audited_once(site, "event", || held_event("91"));
    let second = audited_once(site, "event", || held_event("92"));
    same_refusal(&window, site, "resend", op(json!({"id": first})), &cli(&["requeue", &first.to_string()]));
    for flow in ["store", "ehr-write"] {
        audited_once(site, "consent", || {
            let consent = op(json!({"system": SYSTEM, "value": "MRN-100002", "flow": flow, "granted": true}));
            invoke(&window, "set_consent", consent).unwrap();
        });
    }
    audited_once(site, "requeue", || invoke(&window, "resend", op(json!({"id": first}))).unwrap());
    audited_once(site, "requeue", || assert_eq!(vigil(site, &cli(&["requeue", &second.to_string()])).0, 0));

    // Registry import is CLI-only: a file that does not parse is refused (exit 2, no entry); the demo
    // registry imports.
    let bad = site.join("bad-registry.toml");
    std::fs::write(&bad, "patients = 3").unwrap();
    let before = audited_by(site, "nurse-ann");
    let (status, text) = vigil(site, &cli(&["import-registry", bad.to_str().unwrap()]));
    assert_eq!((status, audited_by(site, "nurse-ann")), (2, before), "{text}");
    let registry = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/demo/registry.toml");
    let (status, text) = vigil(site, &cli(&["import-registry", registry.to_str().unwrap()]));
    assert!(status == 0 && text.contains("imported 4 patients"), "{text}");

    // Alarms: the unpaired monitor's technical alarm; silenced by each face, acknowledged once.
    let alarm = wait_for("the unpaired monitor's alarm", || {
        let a = invoke(&window, "alarms", json!({"activeOnly": true})).unwrap();
        a.as_array().unwrap().iter().find(|a| a["rule_id"] == "device-unpaired").map(|a| a["id"].clone())
    });
    let id = alarm.to_string();
    audited_once(site, "silence", || {
        invoke(&window, "silence_alarm", op(json!({"id": alarm, "reason": "at the bedside", "minutes": 5}))).unwrap();
    });
    audited_once(site, "silence", || {
        assert_eq!(vigil(site, &cli(&["silence", &id, "--minutes", "5", "--reason", "at the bedside"])).0, 0);
    });
    audited_once(site, "ack", || {
        invoke(&window, "ack_alarm", op(json!({"id": alarm, "reason": "pairing it now"}))).unwrap();
    });
    let again = same_refusal(
        &window,
        site,
        "ack_alarm",
        op(json!({"id": alarm, "reason": "pairing it now"})),
        &cli(&["ack", &id, "--reason", "pairing it now"]),
    );
    assert_eq!(again, ErrorCode::Refused, "acknowledged once");

    tauri::async_runtime::block_on(app.state::<ConsoleState>().stop());
}

/// The roles hold in both faces: a viewer may not act, a clinician may acknowledge but not pair, a
/// biomed may pair but not change the EHR's address. Each refusal is `forbidden` (exit 6 on the
/// CLI), says which role is needed, and is audited.
#[test]
fn each_role_is_refused_what_it_may_not_do_through_either_face() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path();
    let (app, window) = console_app(site);
    let refusals = |who: &str| {
        let (status, text) = vigil_as(site, &strings(&["audit", "list", "--limit", "100000"]), "admin");
        assert_eq!(status, 0, "{text}");
        let entries: Value = serde_json::from_str(&text).unwrap();
        entries.as_array().unwrap().iter().filter(|e| e["actor"] == who && e["action"] == "access.refused").count()
    };
    let tokens: Vec<(String, String)> = [
        ("admin", vec![Role::Admin]),
        ("vera", vec![Role::Viewer]),
        ("cleo", vec![Role::Clinician]),
        ("bea", vec![Role::Biomed]),
    ]
    .into_iter()
    .map(|(name, roles)| (name.to_string(), account(&window, site, name, &roles)))
    .collect();
    for (name, token) in &tokens {
        std::fs::write(site.join(format!("{name}.token")), token).unwrap();
    }
    let alarm = wait_for("the unpaired monitor's alarm", || {
        let a = invoke(&window, "alarms", json!({"activeOnly": true})).unwrap();
        a.as_array().unwrap().iter().find(|a| a["rule_id"] == "device-unpaired").map(|a| a["id"].clone())
    });
    let id = alarm.to_string();
    let pair_request = json!({"request": {"device_id": "MX-00A1", "system": SYSTEM, "value": "MRN-100001"}});
    let pair_cli = strings(&["pair", "--device", "MX-00A1", "--patient-system", SYSTEM, "--patient", "MRN-100001"]);
    let mut settings = invoke(&window, "settings", json!({})).unwrap();
    settings["ehr"]["kind"] = json!("fhir");
    settings["ehr"]["base_url"] = json!("https://ehr.example/fhir");
    let save = json!({"settings": settings, "reason": "new EHR"});

    // Each refusal, through the console and the CLI as the same account.
    let refuse = |who: &str, cmd: &str, args: Value, cli: Option<&[String]>, needs: &str| {
        invoke(&window, "sign_in", json!({"name": who, "password": PASSWORD})).unwrap();
        let before = refusals(who);
        let refused = invoke(&window, cmd, args).expect_err(cmd);
        assert_eq!(refused["code"], "forbidden", "{who} {cmd}: {refused}");
        assert!(refused["message"].as_str().unwrap().contains(needs), "{who} {cmd}: {refused}");
        let mut expected = before + 1;
        if let Some(cli) = cli {
            let (status, text) = vigil_as(site, cli, who);
            assert_eq!(status, 6, "{who} {cli:?}: {text}");
            assert!(text.contains(needs), "{who} {cli:?}: {text}");
            expected += 1;
        }
        assert_eq!(refusals(who), expected, "{who} {cmd}: every refusal is audited");
    };
    let ack = json!({"id": alarm, "reason": "seen"});
    let ack_cli = strings(&["ack", &id, "--reason", "seen"]);
    let release = json!({"id": 1, "reason": "pairing fixed"});
    let release_cli = strings(&["release", "1", "--reason", "pairing fixed"]);
    refuse("vera", "pair_device", pair_request.clone(), Some(&pair_cli), "biomed or admin");
    refuse("vera", "release_quarantine", release, Some(&release_cli), "biomed or admin");
    refuse("vera", "ack_alarm", ack.clone(), Some(&ack_cli), "clinician or admin");
    refuse("vera", "save_settings", save.clone(), None, "admin role");
    refuse("vera", "ack_alarms", json!({"ids": [alarm], "reason": "seen"}), None, "clinician or admin");
    let group = json!({"deviceId": "MX-00A1", "reasonCode": "no_active_pairing", "why": "test data"});
    refuse("cleo", "discard_group", group, None, "biomed or admin");
    let release_group = json!({"request": pair_request["request"], "reason": "pairing fixed"});
    refuse("cleo", "pair_and_release", release_group, None, "biomed or admin");
    refuse("cleo", "pair_device", pair_request.clone(), Some(&pair_cli), "biomed or admin");
    refuse("bea", "save_settings", save, None, "admin role");
    refuse("bea", "ack_alarm", ack.clone(), Some(&ack_cli), "clinician or admin");

    // What each may do, it can: the clinician acknowledges, the biomed pairs.
    invoke(&window, "sign_in", json!({"name": "cleo", "password": PASSWORD})).unwrap();
    invoke(&window, "ack_alarm", ack).unwrap();
    let (status, text) = vigil_as(site, &pair_cli, "bea");
    assert_eq!(status, 0, "{text}");
    // A viewer still reads.
    invoke(&window, "sign_in", json!({"name": "vera", "password": PASSWORD})).unwrap();
    assert!(invoke(&window, "devices", json!({})).unwrap().is_array());

    tauri::async_runtime::block_on(app.state::<ConsoleState>().stop());
}

/// `vigil` as the account whose token `account` kept.
fn vigil_as(site: &Path, args: &[String], who: &str) -> (i32, String) {
    let token = std::fs::read_to_string(site.join(format!("{who}.token"))).unwrap();
    run_vigil(site, args, Some(&token))
}
