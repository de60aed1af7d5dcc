// The data contract with the Rust side. Every type here is generated from the Rust DTOs by ts-rs into
// ./generated (never edit those files: change the Rust type and regenerate). This module only
// re-exports them, under the shorter names the views use, so the contract cannot drift by hand.
import type { AlarmView } from './generated/AlarmView';
import type { BatchTally } from './generated/BatchTally';
import type { DeviceView } from './generated/DeviceView';
import type { OutboxView } from './generated/OutboxView';
import type { QuarantineEntry } from './generated/QuarantineEntry';
import type { Status } from './generated/Status';

export type { AlarmCounts } from './generated/AlarmCounts';
export type { AlarmKind } from './generated/AlarmKind';
export type { AlarmView } from './generated/AlarmView';
export type { ApiError } from './generated/ApiError';
export type { BatchTally } from './generated/BatchTally';
export type { BrokerMode } from './generated/BrokerMode';
export type { BrokerSettings } from './generated/BrokerSettings';
export type { ComponentHealth } from './generated/ComponentHealth';
export type { ConnectionResult } from './generated/ConnectionResult';
export type { ConnectionTarget } from './generated/ConnectionTarget';
export type { DegradationMode } from './generated/DegradationMode';
export type { DeliveryState } from './generated/DeliveryState';
export type { DeviceState } from './generated/DeviceState';
export type { DeviceView } from './generated/DeviceView';
export type { EhrAuth } from './generated/EhrAuth';
export type { EhrKind } from './generated/EhrKind';
export type { EhrSettings } from './generated/EhrSettings';
export type { ErrorCode } from './generated/ErrorCode';
export type { FleetDevice } from './generated/FleetDevice';
export type { Flow } from './generated/Flow';
export type { GroupReleaseOutcome } from './generated/GroupReleaseOutcome';
export type { HeldEntry } from './generated/HeldEntry';
export type { HealthState } from './generated/HealthState';
export type { HeldView } from './generated/HeldView';
export type { LiveValue } from './generated/LiveValue';
export type { OutboxStatus } from './generated/OutboxStatus';
export type { OutboxView } from './generated/OutboxView';
export type { PageDelivery } from './generated/PageDelivery';
export type { PairRequest } from './generated/PairRequest';
export type { PairingView } from './generated/PairingView';
export type { Priority } from './generated/Priority';
export type { QuarantineCursor } from './generated/QuarantineCursor';
export type { QuarantineEntry } from './generated/QuarantineEntry';
export type { QuarantineFilter } from './generated/QuarantineFilter';
export type { QuarantineGroup } from './generated/QuarantineGroup';
export type { QuarantinePage } from './generated/QuarantinePage';
export type { Rates } from './generated/Rates';
export type { RejectedEntry } from './generated/RejectedEntry';
export type { ReleaseOutcome } from './generated/ReleaseOutcome';
export type { ReleaseResult } from './generated/ReleaseResult';
export type { Role } from './generated/Role';
export type { SessionView } from './generated/SessionView';
export type { Settings } from './generated/Settings';
export type { Severity } from './generated/Severity';
export type { Status } from './generated/Status';
export type { Validity } from './generated/Validity';
export type { VerifiedPatient } from './generated/VerifiedPatient';

/** The status board (`board` command and the `status` event). */
export type Board = Status;
/** Ingest totals on the board. */
export type IngestTally = BatchTally;
/** An alarm with its patient's label and unit. */
export type Alarm = AlarmView;
/** A quarantined reading, with its origin topic and raw payload. */
export type QuarantineItem = QuarantineEntry;
/** A device with its current pairing (which may end at `paired_until`) and the patient's label. */
export type Device = DeviceView;
/** An outbox row with a one-line summary of its event. */
export type OutboxEntry = OutboxView;
