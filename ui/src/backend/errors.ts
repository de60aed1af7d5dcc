// The one error shape views see, whichever backend produced it.

/** An error as it crosses IPC: a stable `code` the UI may branch on, and a sentence for the operator. */
export class BackendError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'BackendError';
    this.code = code;
  }
}

/** Anything thrown or rejected, as a BackendError (a bare string or a JS error becomes code "internal"). */
export function toBackendError(e: unknown): BackendError {
  if (e instanceof BackendError) return e;
  if (typeof e === 'object' && e !== null && 'code' in e && 'message' in e) {
    const { code, message } = e as { code: unknown; message: unknown };
    if (typeof code === 'string' && typeof message === 'string') return new BackendError(code, message);
  }
  if (typeof e === 'string') return new BackendError('internal', e);
  if (e instanceof Error) return new BackendError('internal', e.message);
  return new BackendError('internal', String(e));
}
