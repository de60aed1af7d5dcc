// Test helpers: render a view inside the contexts the shell provides, over a MockBackend.
import { fireEvent, render, screen } from '@testing-library/preact';
import type { ComponentChildren } from 'preact';
import { App, type ViewId } from '../app';
import { DEMO_ACCOUNT, MockBackend, type MockCall, type MockOptions } from '../backend/mock';
import { BackendContext, SessionContext, type Session } from '../context';

/** Whom views act as unless a test signs in someone else: the demo site's administrator. */
export const ACCOUNT = DEMO_ACCOUNT.name;

/** A view alone, signed in as the mock's account; errors it reports are collected instead of toasted. */
export function renderView(ui: ComponentChildren, opts: MockOptions = {}) {
  const backend = new MockBackend(opts);
  const errors: unknown[] = [];
  const account = opts.accounts?.find((a) => a.name === opts.signedIn) ?? DEMO_ACCOUNT;
  const session: Session = { account: account.name, roles: account.roles, reportError: (e) => errors.push(e) };
  const result = render(
    <BackendContext.Provider value={backend}>
      <SessionContext.Provider value={session}>{ui}</SessionContext.Provider>
    </BackendContext.Provider>,
  );
  return { backend, errors, ...result };
}

/** The whole app on the given view, once the session is read (the demo site by default: signed in). */
export async function renderApp(opts: MockOptions = {}, view: ViewId = 'board') {
  const backend = new MockBackend(opts);
  const result = render(<App backend={backend} initialView={view} />);
  await screen.findByTestId(`nav-${view}`);
  return { backend, ...result };
}

/** Set an input's value the way a user's typing does (Preact listens to `input`). */
export function type(el: HTMLElement, value: string) {
  fireEvent.input(el, { target: { value } });
}

export function choose(el: HTMLElement, value: string) {
  fireEvent.change(el, { target: { value } });
}

/** The calls the mock recorded for one method, as argument lists. */
export function callsOf(backend: MockBackend, method: MockCall['method']) {
  return backend.calls.filter((c) => c.method === method).map((c) => c.args);
}
