// What every view needs from the shell: the backend, who is signed in and a place to report errors.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Backend, Role } from './backend';

export const BackendContext = createContext<Backend | null>(null);

/**
 * The signed-in account, as the backend's session says. Calls do not pass it: the backend keeps the
 * session and records the account in the audit log itself.
 */
export interface Session {
  account: string | null;
  roles: Role[];
  /**
   * Show an error as a toast ("code: message"); `unauthenticated` instead re-reads the session, so the
   * sign-in or lock screen replaces the views.
   */
  reportError(e: unknown): void;
}

export const SessionContext = createContext<Session>({ account: null, roles: [], reportError: () => undefined });

export function useBackend(): Backend {
  const b = useContext(BackendContext);
  if (!b) throw new Error('useBackend outside BackendContext');
  return b;
}

export function useSession(): Session {
  return useContext(SessionContext);
}
