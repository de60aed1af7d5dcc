//! `vigil`: the headless face of the pipeline. Every operator subcommand is one call into the
//! library's facade (`pipeline_core::api::Admin`); its typed error becomes the exit code.
//!
//! # Layout
//! - `args.rs`: the subcommands and their arguments.
//! - `running.rs`: the long-running commands (run, simulate, the terminal demo).
//! - `print.rs`: JSON for scripts, the board in words.
//! - this file: dispatch, and the exit code of each outcome.

mod args;
#[macro_use]
mod print;
mod running;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pipeline_core::api::dto::PairRequest;
use pipeline_core::api::{ApiError, ErrorCode, EventRequest};
use pipeline_core::bench;
use pipeline_core::config::Config;
use pipeline_core::identify::Flow;
use pipeline_core::normalise::ProfileSet;

use args::{AccountAction, AuditWhat, Cli, Command, CredentialAction, OutboxStatusArg, ProfileAction, ShowWhat};
use print::{print_board, print_json};

#[tokio::main]
async fn main() -> ExitCode {
    pipeline_core::secrets::restrict_umask();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse().command).await {
        Ok(code) => code,
        // The reader closed the pipe (`| head`): what it wanted, it got.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil: {e:#}");
            // The facade's errors say what kind of failure it was; scripts branch on the code.
            e.downcast_ref::<ApiError>().map_or(ExitCode::FAILURE, |api| ExitCode::from(api.code.exit_code()))
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => running::run_pipeline(load_config(&config)?).await?,
        Command::Demo(args) => running::demo(args).await?,
        Command::Simulate(args) => running::simulate(args).await?,
        Command::Bench(args) if args.alarm_latency => {
            let r =
                bench::alarm_latency(&args.profiles, args.rate, args.seconds, 100, args.ehr_down, args.store_stalled)
                    .await?;
            outln!(
                "{} alarms at {:.0} readings/s, EHR {}, store {}: p50 {:.1} ms, p99 {:.1} ms (publish to webhook)",
                r.alarms,
                r.readings_per_sec,
                if args.ehr_down { "down" } else { "up" },
                if args.store_stalled { "stalled" } else { "writing" },
                r.p50.as_secs_f64() * 1000.0,
                r.p99.as_secs_f64() * 1000.0
            );
        }
        Command::Bench(args) if args.mllp => {
            let r = bench::mllp_throughput(args.payloads, args.publishers, &args.profiles).await?;
            outln!(
                "{} messages, {} readings in {:.2} s: {:.0} messages/s with ACKs, {:.0} readings/s ({} connections)",
                r.payloads,
                r.readings,
                r.elapsed.as_secs_f64(),
                r.payloads_per_sec(),
                r.readings_per_sec(),
                args.publishers
            );
        }
        Command::Bench(args) => {
            let options = bench::BenchOptions {
                payloads: args.payloads,
                publishers: args.publishers,
                kind: args.profile,
                mosquitto: args.mosquitto,
                profiles: args.profiles,
            };
            let r = bench::ingest_throughput(&options).await?;
            outln!(
                "{} payloads, {} readings in {:.2} s: {:.0} payloads/s, {:.0} readings/s ({:?}, {} publishers, {})",
                r.payloads,
                r.readings,
                r.elapsed.as_secs_f64(),
                r.payloads_per_sec(),
                r.readings_per_sec(),
                options.kind,
                options.publishers,
                if options.mosquitto { "Mosquitto" } else { "embedded endpoint" }
            );
        }
        Command::CheckConfig { file } => {
            return Ok(match Config::load(&file) {
                Ok(config) => {
                    outln!("{}: OK", file.display());
                    for warning in access_warnings(config).await {
                        outln!("warning: {warning}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    print::write_out(&e.to_string())?;
                    ExitCode::from(2)
                }
            });
        }
        Command::Profile { action: ProfileAction::Try { profile, payload, config, json } } => {
            let config = config.as_deref().map(load_config).transpose()?;
            let bytes = std::fs::read(&payload).with_context(|| format!("cannot read {}", payload.display()))?;
            let trial = pipeline_core::api::try_profile(
                &profile,
                config.as_ref().map(|c| c.profiles.dir.as_path()),
                config.as_ref().and_then(|c| c.sources.mllp.as_ref()),
                &bytes,
            )?;
            if json {
                print_json(&trial)?;
            } else {
                print::print_trial(&trial)?;
            }
            return Ok(if trial.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Command::CheckProfiles { dir } => {
            let profiles = ProfileSet::load_dir(&dir)?;
            for p in profiles.iter() {
                outln!("{}: OK", p.id);
            }
        }
        Command::Devices { site, register, profile, label, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            if let Some(id) = register {
                let profile = profile.unwrap_or_default();
                admin.register_device(&actor, &id, &profile, label.as_deref().unwrap_or("")).await?;
            }
            print_json(&admin.devices(&actor).await?)?;
        }
        Command::Patient { site, patient, name, verified_by, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            let (system, value) = (&patient.patient_system, &patient.patient);
            let key = admin.register_patient(&actor, system, value, name.as_deref(), verified_by.as_deref()).await?;
            outln!("patient {key}");
        }
        Command::Pair { site, device, patient, from, until, reason, replacing, release_quarantine, operator } => {
            let request = PairRequest {
                device_id: device,
                system: patient.patient_system,
                value: patient.patient,
                from,
                until,
                reason,
                replacing,
            };
            let (admin, actor) = site.open_as(&operator).await?;
            if let Some(why) = release_quarantine {
                let outcome = admin.pair_and_release(&actor, &request, &why).await?;
                outln!("device {}: {}", request.device_id, outcome.detail);
            } else {
                let p = admin.pair_device(&actor, &request).await?;
                let replaced = p
                    .replaced
                    .map(|old| format!(", replacing patient {} (pairing {} ended)", old.patient_id, old.id))
                    .unwrap_or_default();
                outln!("pairing {}: device {} with patient {}{replaced}", p.id, request.device_id, p.patient_id);
            }
        }
        Command::Unpair { site, device, at, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            let id = admin.unpair_device(&actor, &device, at).await?;
            outln!("pairing {id} closed");
        }
        Command::Consent { site, patient, flow, refuse, operator } => {
            let flow = Flow::parse(&flow).ok_or_else(|| {
                invalid(format!("unknown flow {flow:?}: use store or ehr-write (alarms never depend on consent)"))
            })?;
            let (admin, actor) = site.open_as(&operator).await?;
            let (system, value) = (&patient.patient_system, &patient.patient);
            let key = admin.set_consent(&actor, system, value, flow, !refuse).await?;
            outln!("patient {key}: {flow} {}", if refuse { "refused" } else { "granted" });
        }
        Command::Event { site, device, patient, observations, bp, at, report, validity, operator } => {
            let request = EventRequest {
                device_id: device,
                system: patient.patient_system,
                value: patient.patient,
                observations,
                blood_pressure: bp,
                at,
                report,
                validity,
            };
            let (admin, actor) = site.open_as(&operator).await?;
            match admin.submit_event(&actor, &request).await? {
                Some(id) => outln!("queued as outbox {id}"),
                None => outln!("already queued: the same event was submitted before"),
            }
        }
        Command::Alarms { site, active, limit, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            print_json(&admin.alarms(&actor, active, limit).await?)?
        }
        Command::Ack(a) => {
            let (admin, actor) = a.site.open_as(&a.operator).await?;
            admin.ack_alarm(&actor, a.id, &a.reason).await?;
            outln!("alarm {} acknowledged by {}", a.id, actor.name());
        }
        Command::Silence { site, id, minutes, reason, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            let until = admin.silence_alarm(&actor, id, &reason, minutes).await?;
            let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            outln!("alarm {id} silenced by {} until {until}", actor.name());
        }
        Command::Release(a) => {
            let (admin, actor) = a.site.open_as(&a.operator).await?;
            let outcome = admin.release_quarantine(&actor, a.id, &a.reason).await?;
            outln!("quarantine {}: {}", a.id, outcome.detail);
        }
        Command::Discard(a) => {
            let (admin, actor) = a.site.open_as(&a.operator).await?;
            admin.discard_quarantine(&actor, a.id, &a.reason).await?;
            outln!("quarantine {} discarded (kept for forensics)", a.id);
        }
        Command::DeviceDemo { site, device, off, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            admin.set_device_demo(&actor, &device, !off).await?;
            outln!("device {device}: {}", if off { "its readings are real" } else { "its readings are demo data" });
        }
        Command::ReleaseHeld { site, patient, reason, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            let moved = admin.release_held(&actor, &patient.patient_system, &patient.patient, &reason).await?;
            outln!("{moved} held readings stored");
        }
        Command::DegradationModes => print::write_out(&pipeline_core::health::modes::render_markdown())?,
        Command::Status { config, url, token_file, json } => {
            let (url, token_file) = match (url, config) {
                (Some(url), _) => (url, token_file),
                (None, Some(config)) => {
                    let config = load_config(&config)?;
                    let scheme = if config.status.tls_cert_file.is_some() { "https" } else { "http" };
                    let token = token_file.unwrap_or_else(|| pipeline_core::pipeline::status_token_file(&config));
                    (format!("{scheme}://{}", config.status.listen), Some(token))
                }
                (None, None) => return Err(invalid("give --config or --url".into()).into()),
            };
            let mut request = reqwest::Client::new().get(format!("{}/status", url.trim_end_matches('/')));
            if let Some(token) = token_file.and_then(|f| std::fs::read_to_string(f).ok()) {
                request = request.bearer_auth(token.trim());
            }
            let response =
                request.send().await.with_context(|| format!("Vigil is not answering at {url}: is it running?"))?;
            let status: serde_json::Value = response.json().await?;
            if json {
                print_json(&status)?;
            } else {
                print_board(&status)?;
            }
            let critical = status["modes"].as_array().into_iter().flatten().any(|m| m["severity"] == "critical");
            return Ok(if critical { ExitCode::from(5) } else { ExitCode::SUCCESS });
        }
        Command::Backup { site, file, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            admin.backup(&actor, &file).await?;
            outln!("store copied to {}, with its audit checkpoint", file.display());
        }
        Command::Audit { site, what, limit, backup, from, to, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            match what {
                AuditWhat::List => print_json(&admin.audit_entries(&actor, limit).await?)?,
                AuditWhat::Export => {
                    let from = from.unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
                    print_json(&admin.export_audit(&actor, from, to.unwrap_or_else(chrono::Utc::now)).await?)?
                }
                AuditWhat::Verify => {
                    let verdict = match &backup {
                        Some(file) => admin.verify_backup(&actor, file).await?,
                        None => admin.verify_audit(&actor).await?,
                    };
                    let what =
                        backup.map_or_else(|| "audit log".to_string(), |f| format!("audit log of {}", f.display()));
                    match (&verdict.problem, verdict.first_broken) {
                        (None, _) => outln!(
                            "{what} intact: {} entries, keyed, matching the checkpoint of {}",
                            verdict.entries,
                            verdict.checkpoint.as_ref().map_or_else(|| "-".into(), |c| c.at.to_rfc3339())
                        ),
                        (Some(problem), first) => {
                            let at = first.map(|id| format!(" at entry {id}")).unwrap_or_default();
                            outln!("{what} BROKEN{at} ({} entries): {problem}", verdict.entries);
                            return Ok(ExitCode::from(4));
                        }
                    }
                }
            }
        }
        Command::Permissions => print::write_out(&pipeline_core::accounts::permissions_markdown())?,
        Command::Accounts { site, action } => return accounts(site, action).await,
        Command::Credentials { site, action } => {
            let admin = site.open().await?;
            let (issued, secret_file) = match action {
                CredentialAction::List { operator } => {
                    print_json(&admin.credentials(&operator.actor(&admin).await?).await?)?;
                    return Ok(ExitCode::SUCCESS);
                }
                CredentialAction::Revoke { username, operator } => {
                    admin.revoke_credential(&operator.actor(&admin).await?, &username).await?;
                    outln!("credential {username} revoked; its sessions close within seconds");
                    return Ok(ExitCode::SUCCESS);
                }
                CredentialAction::Add { username, allow, secret_file, operator } => {
                    (admin.add_credential(&operator.actor(&admin).await?, &username, &allow).await?, secret_file)
                }
                CredentialAction::Rotate { username, secret_file, operator } => {
                    (admin.rotate_credential(&operator.actor(&admin).await?, &username).await?, secret_file)
                }
            };
            match secret_file {
                Some(path) => {
                    pipeline_core::secrets::write_private(&path, &issued.secret)?;
                    outln!("credential {}: its secret is in {} (mode 0600)", issued.username, path.display());
                }
                None => {
                    outln!("credential {}: its secret, shown only this once:", issued.username);
                    outln!("{}", issued.secret);
                }
            }
        }
        Command::Outbox { site, status, limit, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            print_json(&admin.outbox(&actor, status.map(OutboxStatusArg::status), limit).await?)?;
        }
        Command::Requeue { site, id, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            admin.requeue(&actor, id).await?;
            outln!("outbox {id} queued again");
        }
        Command::ImportRegistry { site, file, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            let (patients, devices) = admin.import_registry(&actor, &file).await?;
            outln!("imported {patients} patients, {devices} devices");
        }
        Command::Show { site, what, limit, device, operator } => {
            let (admin, actor) = site.open_as(&operator).await?;
            match what {
                ShowWhat::Counts => print_json(&admin.counts().await?)?,
                ShowWhat::Readings => print_json(&admin.readings(&actor, device, limit).await?)?,
                ShowWhat::Quarantine => print_json(&admin.quarantine(&actor, limit).await?)?,
                ShowWhat::Rejected => print_json(&admin.rejected(&actor, limit).await?)?,
                ShowWhat::Held => print_json(&admin.held(&actor, limit).await?)?,
                ShowWhat::Purged => print_json(&admin.purge_summaries(limit).await?)?,
                ShowWhat::Sandbox => {
                    let kept: Vec<serde_json::Value> = admin
                        .sandbox(&actor, limit)
                        .await?
                        .into_iter()
                        .map(|(id, body)| serde_json::json!({"outbox_id": id, "bundle": serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()}))
                        .collect();
                    print_json(&kept)?
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil accounts ...`.
async fn accounts(site: args::SiteArgs, action: AccountAction) -> anyhow::Result<ExitCode> {
    let admin = site.open().await?;
    match action {
        AccountAction::Init { name } => {
            let password = args::password_from("VIGIL_PASSWORD", &format!("new password for {name}: "))?;
            let actor = admin.create_first_admin(&name, &password).await?;
            outln!("account {} created with the admin role", actor.name());
        }
        AccountAction::Add { name, roles, operator } => {
            let actor = operator.actor(&admin).await?;
            let password = args::password_from("VIGIL_NEW_PASSWORD", &format!("new password for {name}: "))?;
            admin.add_account(&actor, &name, &password, &roles).await?;
            outln!("account {name} created");
        }
        AccountAction::Roles { name, roles, operator } => {
            admin.set_roles(&operator.actor(&admin).await?, &name, &roles).await?;
            outln!("account {name}: roles changed");
        }
        AccountAction::Password { name, operator } => {
            let actor = operator.actor(&admin).await?;
            let password = args::password_from("VIGIL_NEW_PASSWORD", &format!("new password for {name}: "))?;
            admin.set_password(&actor, &name, &password).await?;
            outln!("account {name}: password changed");
        }
        AccountAction::List { operator } => print_json(&admin.accounts(&operator.actor(&admin).await?).await?)?,
        AccountAction::Token { ttl, operator } => {
            let (token, until) = admin.issue_token(&operator.actor(&admin).await?, ttl).await?;
            eprintln!("a token until {until}, shown only this once; give it to scripts as VIGIL_TOKEN");
            outln!("{token}");
        }
        AccountAction::BreakGlass { reason } => {
            let data_dir = admin.data_dir();
            let os_user =
                std::env::var("USER").unwrap_or_else(|_| format!("uid {}", rustix::process::geteuid().as_raw()));
            let (token, until) = admin.break_glass(&data_dir, &os_user, &reason).await?;
            eprintln!("break-glass: an admin session until {until}; a technical alarm is raised and it is audited");
            outln!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An invalid-input error, as the facade would give it (exit 2).
fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidInput, message)
}

pub(crate) fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()).into())
}

/// Device-access warnings for a valid config: read from its store when the store exists (a new site
/// has none yet, and check-config creates nothing).
async fn access_warnings(config: Config) -> Vec<String> {
    let exists = config.store.url.strip_prefix("sqlite://").is_none_or(|p| Path::new(p).exists());
    if !exists {
        return vec![
            "the store does not exist yet: devices need credentials (vigil credentials add) before they can connect"
                .into(),
        ];
    }
    match pipeline_core::api::Admin::open(config, pipeline_core::clock::system()).await {
        Ok(admin) => {
            admin.access_warnings().await.unwrap_or_else(|e| vec![format!("device credentials not checked: {e}")])
        }
        Err(e) => vec![format!("device credentials not checked: {e}")],
    }
}
