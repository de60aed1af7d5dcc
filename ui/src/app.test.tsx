import { fireEvent, render, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { App } from './app';
import { MockBackend } from './backend/mock';
import { callsOf, renderApp, type } from './test/render';

describe('console shell', () => {
  it('fills the window with why the pipeline did not start, and how to restore, instead of the console', async () => {
    const backend = new MockBackend();
    const why = 'the pipeline did not start: the database /srv/vigil.db is damaged (file is not a database). ' +
      'To restore: stop every Vigil on this store, move /srv/vigil.db aside, copy your newest backup (made by vigil backup)';
    backend.failNext('board', 'start_failed', why);
    render(<App backend={backend} />);
    const failure = await screen.findByTestId('start-failure');
    expect(failure.textContent).toContain('Vigil did not start');
    expect(failure.textContent).toContain('copy your newest backup');
    expect(failure.textContent).toContain('pages nobody');
    expect(screen.queryByTestId('operator-start')).toBeNull();
    expect(screen.queryByTestId('nav-board')).toBeNull();
  });

  it('asks for the operator first and shows nothing else until a name is given', async () => {
    render(<App backend={new MockBackend()} />);
    expect(screen.queryByTestId('nav-board')).toBeNull();
    expect(screen.queryByTestId('operator-current')).toBeNull();
    // The banner is there even before anyone has signed in.
    expect(screen.getByTestId('mode-banner')).toBeTruthy();
    const start = screen.getByTestId('operator-start') as HTMLButtonElement;
    expect(start.disabled).toBe(true);
    type(screen.getByTestId('operator-name'), '   ');
    expect(start.disabled).toBe(true);
    type(screen.getByTestId('operator-name'), '  A. Biomed ');
    fireEvent.click(start);
    expect(screen.getByTestId('operator-current').textContent).toBe('Operator: A. Biomed');
    expect(screen.getByTestId('nav-board').getAttribute('aria-current')).toBe('page');
  });

  it('passes the operator name to mutating calls, also after a change', async () => {
    const { backend } = await renderApp({}, 'alarms', 'A. Biomed');
    fireEvent.click(screen.getByRole('button', { name: 'change' }));
    type(screen.getByTestId('operator-name'), 'B. Nurse');
    fireEvent.click(screen.getByTestId('operator-start'));
    fireEvent.click(screen.getByTestId('nav-alarms'));
    const row = (await screen.findAllByTestId('alarm-row'))[0]!;
    fireEvent.click(within(row).getByTestId('alarm-ack'));
    type(screen.getByTestId('ack-reason'), 'Seen at bedside');
    fireEvent.click(screen.getByTestId('ack-confirm'));
    await waitFor(() => expect(callsOf(backend, 'ackAlarm')).toEqual([[41, 'B. Nurse', 'Seen at bedside']]));
  });

  it('switches views from the nav and marks the current one', async () => {
    await renderApp();
    fireEvent.click(screen.getByTestId('nav-quarantine'));
    expect(screen.getByTestId('nav-quarantine').getAttribute('aria-current')).toBe('page');
    expect(screen.getByTestId('nav-board').hasAttribute('aria-current')).toBe(false);
    expect(await screen.findAllByTestId('quarantine-row')).toHaveLength(2);
  });

  it('shows a backend error as "code: message" in the alert area', async () => {
    const { backend } = await renderApp({}, 'alarms');
    const row = (await screen.findAllByTestId('alarm-row'))[0]!;
    fireEvent.click(within(row).getByTestId('alarm-ack'));
    type(screen.getByTestId('ack-reason'), 'Seen');
    backend.failNext('ackAlarm', 'refused', 'alarm 41 does not exist or is already acknowledged');
    fireEvent.click(screen.getByTestId('ack-confirm'));
    const toast = await screen.findByTestId('toast');
    expect(toast.textContent).toContain('refused: alarm 41 does not exist or is already acknowledged');
    expect(toast.closest('[role="alert"]')).toBeTruthy();
    // The form stays open so the operator can see what they tried.
    expect(screen.getByTestId('ack-reason')).toBeTruthy();
    fireEvent.click(within(toast).getByRole('button'));
    expect(screen.queryByTestId('toast')).toBeNull();
  });
});
