//! The commands through Tauri's IPC (`tauri::test`'s mock runtime) over a real demo console in a
//! temp dir: arguments arrive by their camelCase names, answers and `{code, message}` errors come
//! back as the UI receives them.

use std::path::Path;

use pipeline_core::api::{Console, ConsoleOptions, DemoFiles, system_clock};
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
    let refused =
        invoke(&window, "ack_alarm", json!({"id": 999_999, "operator": "nurse ann", "reason": "seen"})).unwrap_err();
    assert_eq!(refused["code"], "refused", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("999999"), "{refused}");
    let nameless = invoke(&window, "unpair_device", json!({"deviceId": "OX-1000", "operator": ""})).unwrap_err();
    assert_eq!(nameless["code"], "invalid_input");
    let unknown =
        invoke(&window, "lookup_patient", json!({"system": super::tests::SYSTEM, "value": "MRN-0"})).unwrap_err();
    assert_eq!(unknown["code"], "patient_not_found");

    invoke(
        &window,
        "pair_device",
        json!({
            "deviceId": "MX-00A1", "system": super::tests::SYSTEM, "value": "MRN-100001",
            "from": null, "until": null, "operator": "biomed bo"
        }),
    )
    .unwrap();
    let devices = invoke(&window, "devices", json!({})).unwrap();
    let mx = devices.as_array().unwrap().iter().find(|d| d["device_id"] == "MX-00A1").unwrap();
    assert_eq!(mx["patient_label"], "Demo Patient Bravo");
    let outbox = invoke(&window, "outbox", json!({"status": null})).unwrap();
    assert!(outbox.is_array());

    tauri::async_runtime::block_on(app.state::<ConsoleState>().stop());
}

const SYSTEM: &str = "urn:oid:2.16.840.1.113883.19.5.99999.2";
