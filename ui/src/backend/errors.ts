// The one error shape views see, whichever backend produced it.
import type { ErrorCode } from './types';

/**
 * Every code Rust can send, as a value, so a `{code, message}` rejection can be checked at run time.
 * Typed as a record over the generated union: the compiler fails here when Rust adds or drops a code.
 */
const ERROR_CODES: Record<ErrorCode, true> = {
  invalid_input: true, invalid_config: true, unknown_profile: true, unknown_series: true, not_found: true,
  patient_not_found: true, unverified_patient: true, ambiguous_patient: true, refused: true, held: true,
  ehr_unreachable: true, store: true, start_failed: true, restarting: true, forbidden: true, unauthenticated: true,
  sign_in_failed: true,
};

const isErrorCode = (code: string): code is ErrorCode => Object.hasOwn(ERROR_CODES, code);

/**
 * An error as it crosses IPC: a stable `code` the UI may branch on, and a sentence for the operator.
 * `internal` is for failures that did not come from Rust's facade (a thrown JS error, a bare string).
 */
export class BackendError extends Error {
  readonly code: ErrorCode | 'internal';
  constructor(code: ErrorCode | 'internal', message: string) {
    super(message);
    this.name = 'BackendError';
    this.code = code;
  }
}

/**
 * Anything thrown or rejected, as a BackendError. A `{code, message}` with a code Rust does not have
 * becomes "internal", keeping that code in the message.
 */
export function toBackendError(e: unknown): BackendError {
  if (e instanceof BackendError) return e;
  if (typeof e === 'object' && e !== null && 'code' in e && 'message' in e) {
    const { code, message } = e as { code: unknown; message: unknown };
    if (typeof code === 'string' && typeof message === 'string') {
      return isErrorCode(code) ? new BackendError(code, message) : new BackendError('internal', `${code}: ${message}`);
    }
  }
  if (typeof e === 'string') return new BackendError('internal', e);
  if (e instanceof Error) return new BackendError('internal', e.message);
  return new BackendError('internal', String(e));
}
