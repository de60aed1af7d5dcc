// Test helpers: render a view inside the contexts the shell provides, over a MockBackend.
import { fireEvent, render, screen } from '@testing-library/preact';
import type { ComponentChildren } from 'preact';
import { App, type ViewId } from '../app';
import { MockBackend, type MockCall, type MockOptions } from '../backend/mock';
import { BackendContext, SessionContext, type Session } from '../context';

export const OPERATOR = 'Test Operator';

/** A view alone, with a fixed operator; errors it reports are collected instead of toasted. */
export function renderView(ui: ComponentChildren, opts: MockOptions = {}) {
  const backend = new MockBackend(opts);
  const errors: unknown[] = [];
  const session: Session = { operator: OPERATOR, reportError: (e) => errors.push(e) };
  const result = render(
    <BackendContext.Provider value={backend}>
      <SessionContext.Provider value={session}>{ui}</SessionContext.Provider>
    </BackendContext.Provider>,
  );
  return { backend, errors, ...result };
}

/** The whole app, past the operator prompt. */
export async function renderApp(opts: MockOptions = {}, view: ViewId = 'board', operator = OPERATOR) {
  const backend = new MockBackend(opts);
  const result = render(<App backend={backend} initialView={view} />);
  type(screen.getByTestId('operator-name'), operator);
  fireEvent.click(screen.getByTestId('operator-start'));
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
