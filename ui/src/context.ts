// What every view needs from the shell: the backend, the operator's name and a place to report errors.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Backend } from './backend';

export const BackendContext = createContext<Backend | null>(null);

export interface Session {
  /** The operator's name for this session; every mutating call passes it for the audit log. */
  operator: string;
  /** Show an error as a toast ("code: message"). */
  reportError(e: unknown): void;
}

export const SessionContext = createContext<Session>({ operator: '', reportError: () => undefined });

export function useBackend(): Backend {
  const b = useContext(BackendContext);
  if (!b) throw new Error('useBackend outside BackendContext');
  return b;
}

export function useSession(): Session {
  return useContext(SessionContext);
}
