import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/preact';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { App } from './app';
import { MockBackend, type MockAccount, type MockOptions } from './backend/mock';
import { EHR_SYNC_PAUSED } from './backend/demo-data';
import { callsOf, renderApp, type } from './test/render';

const ACCOUNTS: MockAccount[] = [
  { name: 'vera', password: 'viewer-password', roles: ['viewer'] },
  { name: 'cleo', password: 'clinician-password', roles: ['clinician'] },
];

/** The app over a mock of a site with accounts, nobody signed in unless `opts` says so. */
async function renderSite(opts: MockOptions = {}) {
  const backend = new MockBackend({ accounts: ACCOUNTS, ...opts });
  const result = render(<App backend={backend} />);
  await waitFor(() => expect(callsOf(backend, 'session')).toHaveLength(1));
  return { backend, ...result };
}

/** Let `ms` pass on the fake clock, running what falls due. */
async function idle(ms: number) {
  await act(async () => { await vi.advanceTimersByTimeAsync(ms); });
}

async function signIn(name: string, password: string) {
  type(await screen.findByTestId('signin-name'), name);
  type(screen.getByTestId('signin-password'), password);
  fireEvent.click(screen.getByTestId('signin-submit'));
}

async function acknowledgeFirstAlarm(reason: string) {
  fireEvent.click(screen.getByTestId('nav-alarms'));
  const row = (await screen.findAllByTestId('alarm-row'))[0]!;
  fireEvent.click(within(row).getByTestId('alarm-ack'));
  type(screen.getByTestId('ack-reason'), reason);
  fireEvent.click(screen.getByTestId('ack-confirm'));
}

describe('console shell', () => {
  afterEach(() => { vi.useRealTimers(); });

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
    expect(screen.queryByTestId('signin-submit')).toBeNull();
    expect(screen.queryByTestId('nav-board')).toBeNull();
  });

  it('signs the demo site in as demo, with the DEMO badge, the account and its roles', async () => {
    await renderApp();
    expect(screen.getByTestId('demo-badge').textContent).toBe('DEMO');
    expect(screen.getByTestId('account-current').textContent).toBe('demo (admin)');
    expect(screen.queryByTestId('break-glass-badge')).toBeNull();
  });

  it('shows a break-glass session with its badge', async () => {
    await renderApp({ breakGlass: true });
    expect(screen.getByTestId('break-glass-badge').textContent).toBe('BREAK-GLASS');
  });

  it('asks to sign in first and shows nothing else until the password is right', async () => {
    const { backend } = await renderSite();
    expect(screen.queryByTestId('nav-board')).toBeNull();
    expect(screen.queryByTestId('account-current')).toBeNull();
    expect(screen.queryByTestId('demo-badge')).toBeNull();
    // The banner is there even before anyone has signed in.
    expect(screen.getByTestId('mode-banner')).toBeTruthy();
    await signIn('cleo', 'wrong password');
    expect((await screen.findByTestId('signin-error')).textContent).toContain('wrong name or password');
    expect(screen.queryByTestId('nav-board')).toBeNull();
    type(screen.getByTestId('signin-password'), 'clinician-password');
    fireEvent.click(screen.getByTestId('signin-submit'));
    expect((await screen.findByTestId('account-current')).textContent).toBe('cleo (clinician)');
    // The fleet is the first view after signing in.
    expect(screen.getByTestId('nav-fleet').getAttribute('aria-current')).toBe('page');
    expect(callsOf(backend, 'signIn')).toEqual([['cleo', 'wrong password'], ['cleo', 'clinician-password']]);
  });

  it('creates the first administrator only with a long enough password typed twice', async () => {
    const { backend } = await renderSite({ accounts: [] });
    expect(screen.queryByTestId('signin-name')).toBeNull();
    type(await screen.findByTestId('first-admin-name'), 'ada');
    type(screen.getByTestId('first-admin-password'), 'too short');
    type(screen.getByTestId('first-admin-password2'), 'too short');
    fireEvent.click(screen.getByTestId('first-admin-submit'));
    expect(screen.getByTestId('first-admin-error').textContent).toContain('at least 12 characters');
    type(screen.getByTestId('first-admin-password'), 'a long admin password');
    type(screen.getByTestId('first-admin-password2'), 'a long admin passwort');
    fireEvent.click(screen.getByTestId('first-admin-submit'));
    expect(screen.getByTestId('first-admin-error').textContent).toContain('not the same');
    expect(callsOf(backend, 'createFirstAdmin')).toEqual([]);
    type(screen.getByTestId('first-admin-password2'), 'a long admin password');
    fireEvent.click(screen.getByTestId('first-admin-submit'));
    expect((await screen.findByTestId('account-current')).textContent).toBe('ada (admin)');
    expect(callsOf(backend, 'createFirstAdmin')).toEqual([['ada', 'a long admin password']]);
  });

  it('locks after lock_after_secs without input, keeping the banner and live alarm counts, and unlocks with the password', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const { backend } = await renderApp({ lockAfterSecs: 60 }, 'alarms');
    await screen.findAllByTestId('alarm-row');
    // Input restarts the wait.
    await idle(50_000);
    fireEvent.keyDown(window, { key: 'Shift' });
    await idle(50_000);
    expect(screen.queryByTestId('lock-screen')).toBeNull();
    await idle(11_000);
    const lock = await screen.findByTestId('lock-screen');
    expect(lock.textContent).toContain('demo');
    expect(lock.textContent).toContain('Demo site: the password is demo');
    // No patient data while locked: the views are gone.
    expect(screen.queryByTestId('alarm-row')).toBeNull();
    expect(document.body.textContent).not.toContain('Demo Patient');
    expect(screen.queryByTestId('nav-alarms')).toBeNull();
    expect(screen.getByTestId('mode-ehr_sync_paused')).toBeTruthy();
    expect(screen.getByTestId('locked-alarm-high').textContent).toBe('1');
    expect(screen.getByTestId('locked-alarm-medium').textContent).toBe('3');
    expect(screen.getByTestId('locked-alarm-low').textContent).toBe('1');

    backend.data.alarms.find((a) => a.id === 42)!.priority = 'high';
    backend.data.modes = [];
    backend.pushStatus();
    await waitFor(() => expect(screen.getByTestId('locked-alarm-high').textContent).toBe('2'));
    expect(screen.getByTestId('locked-alarm-low').textContent).toBe('0');
    expect(screen.getByTestId('mode-banner').textContent).toContain('All systems normal');

    type(screen.getByTestId('unlock-password'), 'not it');
    fireEvent.click(screen.getByTestId('unlock-submit'));
    expect((await screen.findByTestId('unlock-error')).textContent).toContain('wrong name or password');
    type(screen.getByTestId('unlock-password'), 'demo');
    fireEvent.click(screen.getByTestId('unlock-submit'));
    expect((await screen.findByTestId('nav-alarms')).getAttribute('aria-current')).toBe('page');
    expect(screen.queryByTestId('lock-screen')).toBeNull();
  });

  it('never locks by itself when lock_after_secs is 0, but locks from the button', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    await renderApp({ lockAfterSecs: 0 });
    await idle(3_600_000);
    expect(screen.queryByTestId('lock-screen')).toBeNull();
    fireEvent.click(screen.getByTestId('lock-button'));
    expect(await screen.findByTestId('lock-screen')).toBeTruthy();
  });

  it('signs out from the lock screen to let someone else sign in', async () => {
    await renderSite({ signedIn: 'vera' });
    fireEvent.click(await screen.findByTestId('lock-button'));
    fireEvent.click(await screen.findByTestId('unlock-switch'));
    await signIn('cleo', 'clinician-password');
    expect((await screen.findByTestId('account-current')).textContent).toBe('cleo (clinician)');
  });

  it('shows the sign-in screen when a call finds the session gone', async () => {
    const { backend } = await renderApp({}, 'alarms');
    await screen.findAllByTestId('alarm-row');
    await backend.signOut();
    fireEvent.click(screen.getByTestId('nav-quarantine'));
    expect(await screen.findByTestId('signin-name')).toBeTruthy();
    expect(screen.queryByTestId('toast')).toBeNull();
  });

  it('tells a viewer which role acknowledging needs', async () => {
    const { backend } = await renderSite({ signedIn: 'vera' });
    await screen.findByTestId('nav-alarms');
    await acknowledgeFirstAlarm('Seen at bedside');
    const toast = await screen.findByTestId('toast');
    expect(toast.textContent).toContain('forbidden: this needs the clinician role; vera has viewer');
    expect(backend.data.alarms.find((a) => a.id === 41)!.acked_at).toBeNull();
  });

  it('acknowledges in the name of the signed-in account', async () => {
    const { backend } = await renderSite({ signedIn: 'cleo' });
    await screen.findByTestId('nav-alarms');
    await acknowledgeFirstAlarm('Seen at bedside');
    await waitFor(() => expect(callsOf(backend, 'ackAlarm')).toEqual([[41, 'Seen at bedside']]));
    expect(backend.data.alarms.find((a) => a.id === 41)!.acked_by).toBe('cleo');
  });

  it('shows the unacknowledged alarms by priority, technical and patient apart, and the acknowledged, on every view', async () => {
    const { backend } = await renderApp({ modes: [EHR_SYNC_PAUSED] }, 'devices');
    await waitFor(() => expect(screen.getByTestId('alarm-count-high').textContent).toBe('1'));
    expect(screen.getByTestId('alarm-count-medium').textContent).toBe('3');
    expect(screen.getByTestId('alarm-count-low').textContent).toBe('1');
    // The demo's four technical alarms and one about a patient's values, apart; none acknowledged yet.
    expect(screen.getByTestId('alarm-count-technical').textContent).toBe('4');
    expect(screen.getByTestId('alarm-count-physiological').textContent).toBe('1');
    expect(screen.getByTestId('alarm-count-acknowledged').textContent).toBe('0');
    await backend.ackAlarm(41, 'Seen');
    backend.pushStatus();
    await waitFor(() => expect(screen.getByTestId('alarm-count-high').textContent).toBe('0'));
    expect(screen.getByTestId('alarm-count-physiological').textContent).toBe('0');
    expect(screen.getByTestId('alarm-count-acknowledged').textContent).toBe('1');
    fireEvent.click(screen.getByTestId('topbar-alarms'));
    expect(screen.getByTestId('nav-alarms').getAttribute('aria-current')).toBe('page');
    expect(await screen.findAllByTestId('alarm-row')).toHaveLength(5);
  });

  it('switches views from the nav and marks the current one', async () => {
    await renderApp();
    fireEvent.click(screen.getByTestId('nav-quarantine'));
    expect(screen.getByTestId('nav-quarantine').getAttribute('aria-current')).toBe('page');
    expect(screen.getByTestId('nav-board').hasAttribute('aria-current')).toBe(false);
    // The demo's three quarantine groups, and the newest page of their readings.
    expect(await screen.findByTestId('qgroup-MX-00A1-no_active_pairing')).toBeTruthy();
    expect(await screen.findAllByTestId('quarantine-row')).toHaveLength(100);
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
